"""``python -m memvos_jax segment ...``: see memvos_jax/segment_video.py."""

import sys

from memvos_jax.segment_video import main

sys.exit(main())
