"""Train a memory network for video object segmentation.

  python train.py --config configs/stcn.py --workdir=runs/stcn \
      [--config.data.davis_root=DAVIS/2017/trainval] [--config.data.yvos_root=YouTube/train_480p] \
      [--config.training.batch_size=4] [--config.training.num_steps=150000]
  python train.py --config configs/stcn.py:stage0 --config.data.static_root=static/
  python train.py --config configs/stcn.py:tiny --workdir=runs/tiny   # minutes on a CPU
  python train.py --config configs/rpm.py:tiny --workdir=runs/rpm     # self-supervised RPM-Net

Without data folders it trains on the embedded synthetic videos (and says so).
Running the same command again resumes from the newest checkpoint in the
workdir. ``config.model`` picks the trainer (``registry.trainer``: the model's
``FAMILY.trainer``): ``memvos_jax.models.stcn.train`` (STCN, supervised, on the
loop of ``memvos_jax/training/trainer.py``) or ``memvos_jax.models.rpm.train``
(RPM-Net, self-supervised). A bad flag
or config (unknown key or variant) is one line and exit code 2, as is bad
input (a data folder, a checkpoint).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from memvos_jax.apps import cli_report

try:  # the default config file is read (with the overrides in argv) right here
  _CONFIG = config_flags.DEFINE_config_file(
      'config', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'stcn.py'),
      'Config file (configs/stcn.py[:stage0|stage3|tiny]).', lock_config=True)
except Exception as e:  # an unknown key in an override of the default config
  cli_report.fail(cli_report.flag_problem(e, sys.argv))
_WORKDIR = flags.DEFINE_string('workdir', 'runs/stcn', 'Checkpoints, metrics and logs.')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli_report.one_line_warnings()
  config = cli_report.config_value(_CONFIG)
  from memvos_jax.data import outputs
  from memvos_jax.errors import CheckpointError, InputError
  try:
    outputs.check_writable(_WORKDIR.value)   # before the heavy imports
  except InputError as e:
    cli_report.fail(str(e))
  from memvos_jax import registry
  try:
    train = registry.trainer(config.model)
  except ValueError as e:
    cli_report.fail(f'--config: {e}')
  try:
    train(config, _WORKDIR.value)
  except (InputError, CheckpointError) as e:
    cli_report.fail(str(e))


if __name__ == '__main__':
  app.run(main, flags_parser=cli_report.parse_flags)
