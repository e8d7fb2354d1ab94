"""STCN evaluation (and, later, training) config.

Usage: ``python eval.py --config configs/stcn.py --config.checkpoint=stcn.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``.
``--config configs/stcn.py:runlocal`` is a small variant for CPUs and tests.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = 'stcn'
  # Official .pth / .npz state_dict, or an orbax folder written by
  # ``python -m memvos_jax.convert``. Empty: random init (smoke tests only).
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      key_backbone='resnet50', value_backbone='resnet18', key_dim=64, value_dim=512))

  config.data = ml_collections.ConfigDict()
  config.data.root = ''       # DAVIS (JPEGImages/480p/...) or YouTube-VOS layout
  config.data.clips = ''      # comma-separated clip names; empty = all

  config.inference = ml_collections.ConfigDict()
  config.inference.mem_every = 5
  config.inference.top_k = 20             # 0 = softmax over all memory
  # Memory slots. 0 = as many as the official (unbounded) memory would hold
  # for the clip; a fixed number bounds memory on long videos (FIFO eviction
  # of non-annotated frames).
  config.inference.memory_capacity = 0
  config.inference.chunk = 8              # frames per scan (and per host transfer)
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)

  if arg == 'runlocal':
    config.inference.chunk = 4
  config.lock()
  return config

