"""AFB-URR evaluation config.

``python eval.py --config configs/afb_urr.py --config.checkpoint=afb_urr.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``. The official release
(``{'model': state_dict, ...}``) and bare state_dicts (.pth/.npz) both load.
Defaults are the official DAVIS settings; YouTube-VOS and long videos use
``--config.inference.update_rate=0.05``.

Variants (``--config configs/afb_urr.py:<arg>``):
  runlocal  small inference chunks for CPUs and tests.
"""

import ml_collections

from memvos_jax.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('afb_urr', arg, ('default',), 'default')
  config = ml_collections.ConfigDict()
  config.model = 'afb_urr'
  # Official .pth / .npz state_dict (wrapped or bare), or an orbax folder
  # written by ``python -m memvos_jax.convert --model afb_urr``. Empty: random init.
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(key_dim=128, value_dim=512))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict()
  config.inference.budget = 300_000       # features over all classes (bg included), official
  config.inference.update_rate = 0.1      # merge weight (official: DAVIS 0.1, YouTube-VOS 0.05)
  config.inference.thres_close = 0.95     # cosine above which a new feature is merged
  config.inference.thres_valid = 1e-3     # attention weight counted as a use (LFU)
  # Static slots per class = min(class budget, memory_capacity x positions per
  # frame). 0 = the frames the clip memorises: exact (as the official code) yet
  # small on short clips. A fixed number bounds memory on long videos (the
  # budget is then at most that many frames of positions; LFU removes the rest).
  config.inference.memory_capacity = 0
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0        # 0 = the clip's object count (static per clip)

  if arg == 'runlocal':
    common.runlocal(config)
  config.lock()
  return config
