"""``python -m memvos_jax.evaluate``: the DAVIS evaluation command (memvos_jax/apps/evaluate.py)."""

import sys

from memvos_jax.apps.evaluate import main

if __name__ == '__main__':
  sys.exit(main())
