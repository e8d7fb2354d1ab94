"""What every config shares: variant parsing, the eval.py data block, ``runlocal``.

Each config module is ``get_config(arg)``; ``arg`` is the variant after the
colon of ``--config configs/<name>.py:<arg>``. ``variant`` checks it the same
way for every model (the error names the file and the known variants), every
model has a ``runlocal`` variant (its default, with small inference chunks
for CPUs, tests and notebooks: ``runlocal``), and ``eval_data`` is the data
block eval.py reads.
"""

import ml_collections

RUNLOCAL_CHUNK = 4   # frames per scan in ``runlocal`` (host memory and compile stay small)


def variant(name: str, arg: str | None, known: tuple[str, ...], default: str) -> str:
  """``arg`` (or ``default`` when empty), checked against ``known`` + ``runlocal``."""
  arg = arg or default
  known = tuple(known) + (() if 'runlocal' in known else ('runlocal',))
  if arg not in known:
    raise ValueError(f'configs/{name}.py: unknown variant {arg!r} (known: {", ".join(known)})')
  return arg


def eval_data() -> ml_collections.ConfigDict:
  """``config.data`` as eval.py reads it: a clip root and an optional clip list."""
  data = ml_collections.ConfigDict()
  data.root = ''       # eval.py: DAVIS (JPEGImages/480p/...) or YouTube-VOS layout
  data.clips = ''      # eval.py: comma-separated clip names; empty = all
  return data


def scan_options(inference: ml_collections.ConfigDict, chunk: int = 8) -> None:
  """The ``config.inference`` entries every model's scan takes."""
  inference.chunk = chunk           # frames per scan (and per host transfer)
  # 'bfloat16': convolutions and matmuls in bf16 (faster on CPUs with AMX /
  # AVX-512-BF16, and on GPUs / TPUs); softmax, top-k and probabilities stay float32.
  # 'auto': bfloat16 on those machines, float32 elsewhere (inference/dtypes.py).
  inference.dtype = 'float32'
  # eval.py: clips of one frame size segmented together (one vmapped scan); 1: one by one.
  inference.batch_clips = 1


def runlocal(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``runlocal`` variant's change: small inference chunks (CPUs, tests, notebooks)."""
  config.inference.chunk = min(config.inference.chunk, RUNLOCAL_CHUNK)
  return config
