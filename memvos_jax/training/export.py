"""Export a training checkpoint's network variables for eval.py / memvos_jax.load.

  python -m memvos_jax.training.export --workdir runs/tiny [--step 300] --out converted/
  python -m memvos_jax.training.export --workdir runs/default --out memvos_jax/weights/default_stcn.npz

Writes ``{'params', 'batch_stats'}`` with ``memvos_jax.convert.checkpoint.save_variables``
(the orbax format ``restore_variables`` reads), or, for an ``--out`` ending in
``.npz``, with ``save_npz`` (one flat file: how the default model ships). Evaluating straight from the
training checkpoint works too: ``--config.checkpoint=<workdir>/checkpoints/<step>/variables``.
Use the training config (e.g. ``configs/stcn.py:tiny``) so the network matches.
"""

import argparse
import os

from memvos_jax.convert.checkpoint import restore_variables, save_npz, save_variables
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
  variables = restore_variables(src)
  return save_npz(out, variables) if out.endswith('.npz') else save_variables(out, variables)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--out', required=True)
  p.add_argument('--step', type=int, default=None)
  a = p.parse_args(argv)
  print(export(a.workdir, a.out, a.step))


if __name__ == '__main__':
  main()
