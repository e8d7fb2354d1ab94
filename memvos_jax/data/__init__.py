"""Video data: clip discovery, annotation/frame reading and mask writing."""
