"""Compute dtypes of inference: the names, ``'auto'`` resolved for this machine, and the
XLA flag that bfloat16 needs on CPUs.

``'float32'`` runs the network as the official code does (the parity figures);
``'bfloat16'`` runs convolutions and matmuls in bfloat16 (memory stored in it;
affinities, softmax / top-k and probabilities stay float32); ``'auto'`` is
bfloat16 where it is fast and float32 elsewhere (``auto_dtype``), and float32
for the model without a bfloat16 core (RPM-Net). SAM 2's bfloat16 is the official
predictor's ``torch.autocast`` (``models/sam2/common.py``). Everything here is
decided before JAX starts its backend where it can be: ``XLA_FLAGS`` is read
once, then.
"""

import functools
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform
import warnings

import jax
from jax.extend import backend as jax_backend
import jax.numpy as jnp

DTYPES = ('float32', 'bfloat16', 'auto')
# CPU flags (/proc/cpuinfo) of bfloat16 dot-product units: with them bf16 convolutions
# run through oneDNN several times faster than float32 ones.
BF16_UNITS = ('amx_bf16', 'avx512_bf16')
ONEDNN_FLAG = '--xla_cpu_experimental_onednn_custom_call=true'


def resolve(dtype: str, bfloat16_core: bool = True) -> str:
  """``'float32'`` or ``'bfloat16'`` for a requested ``dtype`` (a ValueError naming
  ``inference.dtype`` if unknown); ``bfloat16_core=False``: the model has none, and
  ``'auto'`` means float32."""
  if dtype not in DTYPES:
    raise ValueError(f'inference.dtype={dtype!r} (known: {", ".join(DTYPES)})')
  if dtype != 'auto':
    return dtype
  return auto_dtype() if bfloat16_core else 'float32'


def auto_dtype() -> str:
  """What ``'auto'`` is on this machine: ``'bfloat16'`` on GPUs and TPUs and on CPUs with
  bfloat16 units (AMX, AVX-512-BF16), ``'float32'`` on other CPUs."""
  if _platform() != 'cpu':
    return 'bfloat16'
  return 'bfloat16' if set(BF16_UNITS) & cpu_info()[1] else 'float32'


def _platform() -> str:
  """JAX's platform, without starting the backend unless an accelerator plugin is
  installed and ``JAX_PLATFORMS`` does not say which platform runs."""
  if _backend_started():
    return jax.default_backend()
  wanted = (jax.config.jax_platforms or '').split(',')[0].strip().lower()
  if wanted:
    return wanted
  return jax.default_backend() if _accelerator_plugins() else 'cpu'


def _accelerator_plugins() -> bool:
  """Whether a JAX PJRT plugin (CUDA, ROCm, TPU, ...) is installed beside the CPU one."""
  if importlib.metadata.entry_points(group='jax_plugins'):
    return True
  if importlib.util.find_spec('libtpu') is not None:
    return True
  spec = importlib.util.find_spec('jax_plugins')
  return spec is not None and any(pkgutil.iter_modules(spec.submodule_search_locations))


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
  """(CPU model name, its ISA flags) from /proc/cpuinfo (elsewhere: the platform's name,
  no flags)."""
  model, flags = platform.processor() or platform.machine(), frozenset()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          model = line.split(':', 1)[1].strip()
        elif line.startswith('flags'):
          flags = frozenset(line.split(':', 1)[1].split())
          break
  except OSError:
    pass
  return model, flags


def float32_only(settings, model: str) -> None:
  """For cores without a bfloat16 path: a clear error instead of a silent float32 run."""
  if settings.dtype != 'float32':
    raise ValueError(f'inference.dtype={settings.dtype!r}: {model} runs in float32 only '
                     '(bfloat16: stcn, stm, afb_urr, sam2 and the default model)')


def bf16_kernels() -> None:
  """Before JAX starts its CPU backend: ``XLA_FLAGS`` += ``ONEDNN_FLAG``.

  XLA:CPU runs bfloat16 convolutions through oneDNN (AMX / AVX-512-BF16) only
  with this flag: several times faster than without. It is set only for a
  bfloat16 run because it also changes float32 rounding (oneDNN matmuls),
  which the float32 parity figures are measured without. An explicit setting
  in ``XLA_FLAGS`` wins; once the backend has started it is too late (a
  warning says so).
  """
  flags = os.environ.get('XLA_FLAGS', '')
  if 'xla_cpu_experimental_onednn_custom_call' in flags:
    return
  if _backend_started():
    warnings.warn(f'bfloat16 convolutions run without oneDNN (slower on CPUs): JAX started '
                  f'before memvos_jax could set XLA_FLAGS={ONEDNN_FLAG}; set it yourself '
                  'before importing jax')
    return
  os.environ['XLA_FLAGS'] = f'{flags} {ONEDNN_FLAG}'.strip()


def _backend_started() -> bool:
  """Whether JAX has created its backends (XLA reads ``XLA_FLAGS`` then, once).

  Device queries, transfers and compilations all ask the memoised
  ``jax.extend.backend.get_backend`` first: a call on its record means a
  backend exists. Where the record is unavailable this says no (the flag is
  then set, and only the warning could be missed).
  """
  info = getattr(jax_backend.get_backend, 'cache_info', None)
  if info is None:
    return False
  record = info()
  return bool(getattr(record, 'hits', 0) or getattr(record, 'misses', 0))


def cast_variables(variables, dtype):
  """The floating leaves of ``variables`` as ``dtype`` (done once per model and dtype)."""
  dtype = jnp.dtype(dtype)
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, variables)
