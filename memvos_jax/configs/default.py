"""The default model: a small STCN with an ImageNet MobileNetV2 key encoder (shipped weights).

Segment with it (no checkpoint flag needed; the weights ship in the package):
  python eval.py --config configs/default.py --config.data.root=DAVIS --workdir=out
  memvos_jax.load()            python -m memvos_jax segment --video V --mask M --out O

Reproduce the shipped weights, bit for bit (2-core CPU: 59 min with nothing else
running; docs/training.md has the time, the curve and the held-out figures):
  python train.py --config configs/default.py --workdir runs/default \\
      --config.checkpoint= \\
      --config.training.backbone_init=key=../shared/weights/imagenet/mobilenet_v2-b0353104.pth \\
      --config.data.davis_root=../shared/data/davis2016_train \\
      --config.data.davis_extra_roots=../shared/data/davis2017_extra

Network: STCN, keys from MobileNetV2 (output stride 16; its stride-2..8 blocks frozen),
values from ResNet-18 at half width, key dim 64, value dim 128, decoder widths
(128, 64, 64). Data: 25 DAVIS-2016 train sequences (the five in ``data.heldout``
are kept out and validated on), the DAVIS-2017 extras given in
``data.davis_extra_roots`` and pasted pseudo-videos; frames at 240 px shorter side,
192 px crops, 2 objects per sample, a growing max skip; validation at 240 px.
Inference at 360 px shorter side, masks restored to the frame size.

Variants: ``runlocal`` (a few steps, for tests and notebooks).
"""

import os

from memvos_jax.configs import common
from memvos_jax.configs import stcn
from memvos_jax.configs import training
from memvos_jax.configs.training import HELDOUT  # noqa: F401 (the clips held out)

# The shipped weights, package data beside this subpackage.
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'weights', 'default_stcn.npz')


def get_config(arg: str | None = None):
  arg = common.variant('default', arg, ('default',), 'default')
  config = stcn.get_config('tiny')
  config.unlock()
  config.checkpoint = WEIGHTS if os.path.exists(WEIGHTS) else ''
  config.network.key_backbone = 'mobilenet_v2'
  config.network.value_backbone = 'resnet18_w32'
  config.network.key_dim = 64
  config.network.value_dim = 128
  config.network.decoder_dims = (128, 64, 64)

  t = training.davis_from_imagenet(config)
  inf = config.inference
  # Segments at 360 px: the 192 px training crops of 240 px frames zoom objects by
  # 0.9-1.6x, and 360 px gave held-out J&F 0.754 against 0.716 at 240 (validation
  # stays at 240 px, training.eval_size).
  inf.size = 360
  inf.top_k = 20
  inf.memory_capacity = 0
  inf.chunk = 8

  t.num_steps = 2000
  # MobileNetV2's stride-2..8 blocks keep their ImageNet weights (half the backward pass).
  t.freeze = 'key/key_encoder/features_[0-6]/'
  t.backbone_init = ''
  t.lr_steps = (1700,)
  t.bce_start_warm = 0
  t.bce_end_warm = 300
  t.checkpoint_every = 200
  t.eval_every = 500
  if arg == 'runlocal':
    common.runlocal(config)
    t.num_steps = 6
    t.lr_steps = (5,)
    t.checkpoint_every = 3
    t.eval_every = 6
    t.crop_size = 64
    t.log_every = 1
  config.lock()
  return config
