"""Where a run happens: the CPU model, its ISA extensions, cores and load (benchmarks, CI logs).

Speed figures depend on the CPU family (AVX2 vs AVX-512 vs AMX kernels), so every
benchmark prints and stores this next to its numbers, and ``benchmarks/README.md``
keeps one table per family.
"""

import os

from memvos_jax.inference.dtypes import BF16_UNITS, cpu_info

# The extensions XLA:CPU's kernels (and oneDNN's) choose between, in order.
ISA = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')


def loadavg() -> tuple[float, float, float]:
  """The load average over 1, 5 and 15 minutes, rounded to 0.01."""
  return tuple(round(x, 2) for x in os.getloadavg())


def info() -> dict:
  """{'cpu_model', 'isa': [...], 'cores' (usable by this process), 'loadavg': (1, 5, 15 min),
  'bf16_units': whether the CPU has AMX or AVX-512-BF16}."""
  model, flags = cpu_info()
  isa = [f for f in ISA if f in flags]
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  return dict(cpu_model=model, isa=isa, cores=cores, loadavg=loadavg(),
              bf16_units=bool(set(BF16_UNITS) & flags))


def describe(d: dict | None = None) -> str:
  """One line: ``model, N cores, avx2 avx512f ..., load 0.1/0.2/0.3``."""
  d = d or info()
  isa = ' '.join(d['isa']) or 'none of ' + '/'.join(ISA)
  load = '/'.join(f'{x:.2f}' for x in d['loadavg'])
  return f"{d['cpu_model']}, {d['cores']} cores, {isa}, load {load}"
