"""Segment clip folders with a memory network and write indexed PNG masks.

  python eval.py --config configs/stcn.py --config.checkpoint=stcn.pth \
      --config.data.root=DAVIS/2017/trainval --workdir=out \
      [--config.data.clips=bike,judo] [--config.inference.mem_every=5] \
      [--config.inference.top_k=20] [--config.inference.memory_capacity=0]

Writes ``workdir/<clip>/<frame>.png`` with the input annotation's palette and
object ids. A clip with bad input is reported (one line naming the file) and
skipped; the other clips' outputs are kept; the exit code is 1 if any failed.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output folder.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from memvos_jax import evaluate_folders  # heavy imports after flag parsing
  sys.exit(evaluate_folders.run(_CONFIG.value, _WORKDIR.value))


if __name__ == '__main__':
  app.run(main)
