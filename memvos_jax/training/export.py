"""Export a training checkpoint's network variables for eval.py / memvos_jax.load.

  python -m memvos_jax.training.export --workdir runs/tiny [--step 300] --out converted/

Writes ``{'params', 'batch_stats'}`` with ``memvos_jax.checkpoint.save_variables``
(the orbax format ``restore_variables`` reads). Evaluating straight from the
training checkpoint works too: ``--config.checkpoint=<workdir>/checkpoints/<step>/variables``.
Use the training config (e.g. ``configs/stcn.py:tiny``) so the network matches.
"""

import argparse
import os

from memvos_jax.checkpoint import restore_variables, save_variables
from memvos_jax.errors import CheckpointError


def latest_step(workdir: str) -> int:
  root = os.path.join(workdir, 'checkpoints')
  steps = sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []
  if not steps:
    raise CheckpointError(f'{root}: no training checkpoint')
  return steps[-1]


def export(workdir: str, out: str, step: int | None = None) -> str:
  step = latest_step(workdir) if step is None else step
  src = os.path.join(workdir, 'checkpoints', str(step), 'variables')
  return save_variables(out, restore_variables(src))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--out', required=True)
  p.add_argument('--step', type=int, default=None)
  a = p.parse_args(argv)
  print(export(a.workdir, a.out, a.step))


if __name__ == '__main__':
  main()
