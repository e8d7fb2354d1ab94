"""Where a run happens: the CPU model, its ISA extensions, cores and load (benchmarks, CI logs).

Speed figures depend on the CPU family (AVX2 vs AVX-512 vs AMX kernels), so every
benchmark prints and stores this next to its numbers, and ``benchmarks/README.md``
keeps one table per family.
"""

import os
import platform

# The extensions XLA:CPU's kernels (and oneDNN's) choose between, in order.
ISA = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')


def _cpuinfo() -> tuple[str, set[str]]:
  model, flags = platform.processor() or platform.machine(), set()
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
  return model, flags


def loadavg() -> tuple[float, float, float]:
  """The load average over 1, 5 and 15 minutes, rounded to 0.01."""
  return tuple(round(x, 2) for x in os.getloadavg())


def info() -> dict:
  """{'cpu_model', 'isa': [...], 'cores' (usable by this process), 'loadavg': (1, 5, 15 min),
  'bf16_units': whether the CPU has AMX or AVX-512-BF16}."""
  model, flags = _cpuinfo()
  isa = [f for f in ISA if f in flags]
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  return dict(cpu_model=model, isa=isa, cores=cores, loadavg=loadavg(),
              bf16_units=bool({'amx_bf16', 'avx512_bf16'} & flags))


def describe(d: dict | None = None) -> str:
  """One line: ``model, N cores, avx2 avx512f ..., load 0.1/0.2/0.3``."""
  d = d or info()
  isa = ' '.join(d['isa']) or 'none of ' + '/'.join(ISA)
  load = '/'.join(f'{x:.2f}' for x in d['loadavg'])
  return f"{d['cpu_model']}, {d['cores']} cores, {isa}, load {load}"
