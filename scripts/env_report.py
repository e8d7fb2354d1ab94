"""Prints the package versions and the CPU a test run uses (scripts/test.sh, CI logs).

requirements-lock.txt pins the versions; a figure that differs on another machine
can then be traced to the CPU (model, cores, ISA extensions) rather than a release.
"""

import importlib.metadata as md
import os
import platform

NAMES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'grain', 'numpy', 'pillow')
ISA = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')


def versions() -> str:
  out = []
  for n in NAMES:
    try:
      out.append(f'{n}=={md.version(n)}')
    except md.PackageNotFoundError:
      out.append(f'{n} (not installed)')
  return ' '.join(out)


def cpu() -> str:
  model, flags = platform.machine(), set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
        elif line.startswith('flags'):
          flags = set(line.split(':', 1)[1].split())
          break
  except OSError:
    pass
  isa = ' '.join(f for f in ISA if f in flags) or 'none of ' + '/'.join(ISA)
  return f'{model}, {os.cpu_count()} cores, {isa}'


if __name__ == '__main__':
  print(f'versions: {versions()}')
  print(f'cpu: {cpu()}')
