"""Prints the package versions and the CPU a test run uses (scripts/test.sh, CI logs).

requirements-lock.txt pins the versions; a figure that differs on another machine
can then be traced to the CPU (model, cores, ISA extensions) rather than a release.
"""

import importlib.metadata as md

from memvos_jax.apps import machine
from memvos_jax.inference import dtypes

NAMES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain', 'numpy', 'pillow')


def versions() -> str:
  out = []
  for n in NAMES:
    try:
      out.append(f'{n}=={md.version(n)}')
    except md.PackageNotFoundError:
      out.append(f'{n} (not installed)')
  return ' '.join(out)


def cpu() -> str:
  """The machine line, with what ``inference.dtype='auto'`` means on it."""
  return f"{machine.describe()}; inference.dtype='auto' is {dtypes.auto_dtype()}"


if __name__ == '__main__':
  print(f'versions: {versions()}')
  print(f'cpu: {cpu()}')
