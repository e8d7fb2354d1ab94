"""Segment clip folders with a memory network and write indexed PNG masks.

  python eval.py --config configs/stcn.py --config.checkpoint=stcn.pth \
      --config.data.root=DAVIS/2017/trainval --workdir=out \
      [--config.data.clips=bike,judo] [--config.inference.mem_every=5] \
      [--config.inference.top_k=20] [--config.inference.memory_capacity=0]

Writes ``workdir/<clip>/<frame>.png`` with the input annotation's palette and
object ids; each clip folder appears only once complete. A clip with bad input
is reported (one line naming the file), leaves ``workdir/<clip>.FAILED`` and
no folder, and the run goes on; the other clips' outputs are kept; the exit
code is 1 if any failed. A bad flag or config (unknown key or variant) is one
line and exit code 2.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from memvos_jax.apps import cli_report

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output folder.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli_report.one_line_warnings()
  config = cli_report.config_value(_CONFIG)
  from memvos_jax.apps import evaluate_folders  # heavy imports after flag parsing
  sys.exit(evaluate_folders.run(config, _WORKDIR.value))


if __name__ == '__main__':
  app.run(main, flags_parser=cli_report.parse_flags)
