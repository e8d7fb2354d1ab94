"""STCN evaluation and training config.

Evaluation: ``python eval.py --config configs/stcn.py --config.checkpoint=stcn.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``.
Training:   ``python train.py --config configs/stcn.py --workdir=runs/stcn``
(the official recipe, stage 3: DAVIS + YouTube-VOS; without data folders it
trains on the embedded synthetic videos).

Variants (``--config configs/stcn.py:<arg>``):
  runlocal  small inference chunks for CPUs and tests (training as default);
  stage0    official static-image pretraining (pseudo-videos from image+mask);
  stage3    official main training (the default);
  tiny      ResNet-18 keys, small dims, 128 px crops, still clips first: learns
            from random weights in ~16 minutes on a 2-core CPU (docs/training.md).
"""

import ml_collections

from memvos_jax.configs import common, training

# Official hyper-parameters (hkchengrex/STCN util/hyper_para.py, train.py, model/model.py,
# model/losses.py, dataset/*.py): configs/training.py holds the shared ones.


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('stcn', arg, ('stage3', 'stage0', 'runlocal', 'tiny'), 'stage3')
  config = ml_collections.ConfigDict()
  config.model = 'stcn'
  # Official .pth / .npz state_dict, or an orbax folder written by
  # ``python -m memvos_jax.convert`` or by training (``<workdir>/export``).
  # Empty: random init. For training: the initial weights (e.g. the stage-0
  # result for stage 3, the official ``load_network``).
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      key_backbone='resnet50', value_backbone='resnet18', key_dim=64, value_dim=512,
      decoder_dims=(512, 256, 256)))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict()
  config.inference.size = 0               # segment at this shorter side (0: native)
  config.inference.mem_every = 5
  config.inference.top_k = 20             # 0 = softmax over all memory
  # Memory slots. 0 = as many as the official (unbounded) memory would hold
  # for the clip; a fixed number bounds memory on long videos (FIFO eviction
  # of non-annotated frames).
  config.inference.memory_capacity = 0
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)
  config.inference.eviction = 'fifo'     # full bank: 'fifo' (oldest) or 'lfu' (least used per age)

  t = training.supervised(config, stage=0 if arg == 'stage0' else 3)
  # Bootstrapped cross-entropy (official losses.py): plain CE before start, then
  # the top-p hardest pixels with p going linearly from 1 to top_p between start and end.
  t.bce_start_warm = 20_000
  t.bce_end_warm = 70_000
  t.bce_top_p = 0.15

  if arg == 'runlocal':
    common.runlocal(config)
  if arg == 'tiny':
    config.network = ml_collections.ConfigDict(dict(
        key_backbone='resnet18', value_backbone='resnet18', key_dim=32, value_dim=128,
        decoder_dims=(128, 64, 64)))
    config.inference.chunk = 4
    config.data.synthetic_length = 24
    training.tiny_from_scratch(t)
    t.max_objects = 2
    # Bootstrapping from the start: the hardest pixels (mostly the objects'),
    # so that a network learning from scratch does not settle on background.
    t.bce_start_warm = 0
    t.bce_end_warm = 100
  config.lock()
  return config
