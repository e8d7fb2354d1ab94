"""STM evaluation config (seoungwugoh/STM ``eval_DAVIS.py`` settings).

``python eval.py --config configs/stm.py --config.checkpoint=STM_weights.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``.

Variants (``--config configs/stm.py:<arg>``):
  runlocal  small inference chunks for CPUs and tests.
"""

import ml_collections

from memvos_jax.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('stm', arg, ('default',), 'default')
  config = ml_collections.ConfigDict()
  config.model = 'stm'
  # Official .pth (``STM_weights.pth``, keys with or without ``module.``) or
  # .npz state_dict, or an orbax folder written by ``python -m memvos_jax.convert
  # --model stm``. Empty: random init (smoke tests only).
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      backbone='resnet50', key_dim=128, value_dim=512, decoder_dim=256))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict()
  # Keep frame 0 and every mem_every-th frame (plus annotated frames); the
  # previous frame is always read as a temporary entry (official Mem_every=5).
  config.inference.mem_every = 5
  # Memory slots. 0 = as many as the official (unbounded) memory would hold
  # for the clip; a fixed number bounds memory on long videos (FIFO eviction
  # of non-annotated frames).
  config.inference.memory_capacity = 0
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)

  if arg == 'runlocal':
    common.runlocal(config)
  config.lock()
  return config
