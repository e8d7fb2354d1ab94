"""Object ids versus anti-aliasing: what the values of an annotation mask mean.

An editor's anti-aliased export of a binary mask holds 0, 255 and a few grey
levels along the object's edge; a palette mask resized with interpolation
holds spurious ids along object edges. Both would otherwise be read as many
tiny objects. The test used for both: a value whose pixels (nearly) all lie
on a boundary (a pixel with an 8-neighbour of another value) has no interior,
so it is a level of an edge, not an object; in a multi-object mask such a
value must also lie between two other values (not be the rim of one small
object) and come with others like it before the mask is refused.
"""

import numpy as np

EDGE_FRACTION = 0.9     # an id is "edge only" when this share of its pixels is on a boundary
MIN_JUNK_IDS = 3        # this many edge-only ids in a multi-object mask: refused
THRESHOLD = 128         # anti-aliased 0/255 masks: object where value >= 128


def _neighbours(mask: np.ndarray) -> np.ndarray:
  """[H, W] -> [8, H, W]: each pixel's 8 neighbours (edges repeated)."""
  p = np.pad(mask, 1, mode='edge')
  h, w = mask.shape
  return np.stack([p[dy:dy + h, dx:dx + w] for dy in (0, 1, 2) for dx in (0, 1, 2)
                   if dy != 1 or dx != 1])


def boundary(mask: np.ndarray) -> np.ndarray:
  """[H, W] -> [H, W] bool: pixels with an 8-neighbour of another value."""
  return (_neighbours(mask) != mask).any(0)


def between(mask: np.ndarray) -> np.ndarray:
  """[H, W] -> [H, W] bool: pixels whose neighbours hold two values other than their own
  (a level between two regions, not the rim of one object)."""
  nb = _neighbours(mask)
  other = nb != mask                                       # [8, H, W]
  first = np.take_along_axis(nb, other.argmax(0)[None], 0)[0]  # one other value
  return (other & (nb != first)).any(0)


def edge_only_ids(mask: np.ndarray, counts: np.ndarray | None = None) -> list[int]:
  """Non-zero values of ``mask`` [H, W] uint8 whose pixels are nearly all on a boundary."""
  counts = np.bincount(mask.ravel(), minlength=256) if counts is None else counts
  on_edge = np.bincount(mask[boundary(mask)], minlength=256)
  return [v for v in range(1, 256)
          if counts[v] and on_edge[v] >= EDGE_FRACTION * counts[v]]


def kind(mask: np.ndarray) -> str:
  """'binary' (only 0/255), 'antialiased' (0/255 plus edge-only grey levels) or 'ids'."""
  counts = np.bincount(mask.ravel(), minlength=256)
  present = set(np.flatnonzero(counts).tolist())
  if present <= {0, 255}:
    return 'binary'
  if {0, 255} <= present:
    grey = present - {0, 255}
    if grey <= set(edge_only_ids(mask, counts)):
      return 'antialiased'
  return 'ids'


def grey_levels(mask: np.ndarray) -> tuple[int, float]:
  """(number of grey levels other than 0/255, their share of the pixels)."""
  grey = (mask > 0) & (mask < 255)
  return len(np.unique(mask[grey])), float(grey.mean())


def junk_ids(mask: np.ndarray) -> list[int]:
  """Ids that look like interpolation along edges (refuse the mask if there are
  at least MIN_JUNK_IDS); [] for a plausible multi-object mask.

  Such an id has no interior (edge only) and lies mostly between two other
  values (e.g. between an object and the background), where the thin rim of a
  small real object touches only one.
  """
  counts = np.bincount(mask.ravel(), minlength=256)
  if np.count_nonzero(counts[1:]) < MIN_JUNK_IDS:
    return []
  edge_only = edge_only_ids(mask, counts)
  if len(edge_only) < MIN_JUNK_IDS:
    return []
  in_between = np.bincount(mask[between(mask)], minlength=256)
  junk = [v for v in edge_only if in_between[v] >= 0.5 * counts[v]]
  return junk if len(junk) >= MIN_JUNK_IDS else []


def id_list(ids: list[int], limit: int = 8) -> str:
  """'4, 9, 17, ... (25 ids)' for messages."""
  shown = ', '.join(map(str, ids[:limit]))
  return f'{shown}, ... ({len(ids)} ids)' if len(ids) > limit else shown
