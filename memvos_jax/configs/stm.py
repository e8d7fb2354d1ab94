"""STM evaluation and training config.

Evaluation (seoungwugoh/STM ``eval_DAVIS.py`` settings): ``python eval.py
--config configs/stm.py --config.checkpoint=STM_weights.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``.
Training (the paper's recipe; the official release has no training code):
``python train.py --config configs/stm.py --workdir=runs/stm`` (main training
on videos; without data folders it trains on the embedded synthetic videos).

Variants (``--config configs/stm.py:<arg>``):
  runlocal  small inference chunks for CPUs and tests (training as default);
  stage0    the paper's pre-training: pseudo-videos of three frames made from
            image+mask pairs by random affine deformations
            (``--config.data.static_root=static/``);
  stage3    the paper's main training on video clips (the default);
  tiny      ResNet-18 trunks, small dims, 128 px crops, still clips first
            (as STCN's tiny): learns from random weights on a 2-core CPU
            (on 25 DAVIS-2016 clips, training IoU 0.09 -> 0.39 from the
            first to the last 50 of 300 steps).
  small     the default model's recipe (configs/default.py) on STM: both trunks
            ImageNet MobileNetV2 (``--config.training.backbone_init=FILE``, their
            stride-2..8 blocks frozen), 192 px crops, DAVIS clips and pasted
            pseudo-videos, 2 objects per sample; 2000 steps (x0.1 at 1700), about
            75 min on a 2-core CPU; held-out J&F 0.48 (copying the first mask
            0.28; docs/training.md has the command and the curve).
"""

import ml_collections

from memvos_jax.configs import common, training

# The paper (Oh et al., ICCV 2019, Sec. 3.3-4): ResNet-50 trunks from ImageNet, BatchNorm
# frozen, three frames per clip sampled in temporal order with the number of skipped
# frames growing from 0 to 25 (curriculum), 384x384 random crops, batch 4, Adam with a
# fixed learning rate of 1e-5, cross-entropy of the soft-aggregated probabilities, the
# predicted soft probabilities (not thresholded) written back into memory. Pre-training
# on static images (random affine pseudo-videos), then the main training on videos
# (DAVIS-2017 + YouTube-VOS). What the paper does not give (the number of steps, the
# objects per sample, the weight decay, when the skip grows) is configs/training.py's.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('stm', arg, ('stage3', 'stage0', 'runlocal', 'tiny', 'small'), 'stage3')
  config = ml_collections.ConfigDict()
  config.model = 'stm'
  # Official .pth (``STM_weights.pth``, keys with or without ``module.``) or
  # .npz state_dict, or an orbax folder written by ``python -m memvos_jax.convert
  # --model stm`` or by training (``<workdir>/export``). Empty: random init.
  # For training: the initial weights (e.g. the stage-0 result for the main training).
  config.checkpoint = ''

  # backbone: both trunks (official resnet50; any name of nn/backbones.py).
  config.network = ml_collections.ConfigDict(dict(
      backbone='resnet50', key_dim=128, value_dim=512, decoder_dim=256))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict()
  config.inference.size = 0               # segment at this shorter side (0: native)
  # Keep frame 0 and every mem_every-th frame (plus annotated frames); the
  # previous frame is always read as a temporary entry (official Mem_every=5).
  config.inference.mem_every = 5
  # Memory slots. 0 = as many as the official (unbounded) memory would hold
  # for the clip; a fixed number bounds memory on long videos (FIFO eviction
  # of non-annotated frames).
  config.inference.memory_capacity = 0
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)

  t = training.supervised(config, stage=0 if arg == 'stage0' else 3)
  t.batch_size = 4                 # the paper's, both stages
  t.learning_rate = 1e-5           # fixed: no decay
  t.lr_steps = ()
  # Skipped frames between the sampled ones grow from 0 to 25 (max_skip k samples gaps of
  # 1..k+1 frames, i.e. 0..k skipped; 0 would be still clips here, so the growth starts at 1).
  t.max_skip_values = (1, 5, 10, 15, 20, 25)
  t.max_skip_boundaries = (1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6)

  if arg == 'runlocal':
    common.runlocal(config)
  if arg == 'tiny':
    config.network = ml_collections.ConfigDict(dict(
        backbone='resnet18', key_dim=32, value_dim=128, decoder_dim=64))
    config.inference.size = 240          # held-out DAVIS validation at 240 px (CPU time)
    config.inference.chunk = 4
    config.data.synthetic_length = 24
    training.tiny_from_scratch(t)
    t.max_objects = 2
  if arg == 'small':
    config.network = ml_collections.ConfigDict(dict(
        backbone='mobilenet_v2', key_dim=64, value_dim=128, decoder_dim=64))
    config.inference.chunk = 4
    training.davis_from_imagenet(config)
    t.num_steps, t.lr_steps = 2000, (1700,)
    # The trunks' stride-2..8 blocks keep their ImageNet weights (half the backward pass).
    t.freeze = '(query|memory)_encoder/features_[0-6]/'
    t.checkpoint_every, t.eval_every = 100, 500
  config.lock()
  return config
