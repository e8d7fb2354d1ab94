"""AFB-URR evaluation and training config.

Evaluation: ``python eval.py --config configs/afb_urr.py --config.checkpoint=afb_urr.pth
--config.data.root=DAVIS/2017/trainval --workdir=out``. The official release
(``{'model': state_dict, ...}``) and bare state_dicts (.pth/.npz) both load.
Defaults are the official DAVIS settings; YouTube-VOS and long videos use
``--config.inference.update_rate=0.05``.
Training: ``python train.py --config configs/afb_urr.py --workdir=runs/afb_urr``
(the official ``train.py`` defaults; without data folders it trains on the
embedded synthetic videos).

Variants (``--config configs/afb_urr.py:<arg>``):
  default   official ``train.py`` defaults (lr 1e-5, StepLR x0.5 every 25 epochs,
            100 epochs), epochs of DAVIS-2017 train (60 clips, batch 1);
  runlocal  small inference chunks for CPUs and tests (training as default);
  davis     the README's DAVIS-17 fine-tuning command (lr 4e-6, x0.5 every 200
            epochs, 1000 epochs; start from the pre-training: config.checkpoint);
  youtube   the README's YouTube-VOS command (lr 4e-6, x0.5 every 30 epochs, 150
            epochs of the 3,471 YouTube-VOS 2018 train videos; crops of 30-50 %);
  tiny      ResNet-18 trunks at half width, small dims, 128 px crops, 3 frames,
            still clips first: learns from random weights on a 2-core CPU
            (docs/training.md);
  small     the default model's recipe (configs/default.py) on AFB-URR: both trunks
            ImageNet MobileNetV2 (``--config.training.backbone_init=FILE``), the
            DAVIS clips and pasted pseudo-videos, 2000 steps of batch 4 clips of 3
            frames at 192 px (docs/training.md).
"""

import ml_collections

from memvos_jax.configs import common, training

# Official hyper-parameters (xmlyqing00/AFB-URR train.py, dataset/*.py, README.md):
# batch 1 clip (DataLoader batch_size=1) of clip_n=6 frames, max_obj_n=3 (background + 2
# objects), output_size 400, AdamW(lr) with torch's default weight decay 0.01, StepLR
# gamma 0.5 per epoch count, CrossEntropyLoss + lu * uncertainty with lu 0.5, BatchNorm
# frozen (set_bn_eval). Frames: clip_n distinct frames of the whole video in random
# order (random.shuffle), no skip limit, no reversal.
DAVIS17_TRAIN_CLIPS = 60       # ImageSets/2017/train.txt: one epoch = 60 steps of batch 1
YOUTUBE18_TRAIN_CLIPS = 3471   # YouTube-VOS 2018 train meta.json videos


def _epochs(config, lr: float, step_epochs: int, total_epochs: int, epoch_steps: int):
  """StepLR(step_epochs, 0.5) over total_epochs epochs of epoch_steps steps."""
  t = config.training
  t.learning_rate = lr
  t.num_steps = total_epochs * epoch_steps
  t.lr_steps = tuple(range(step_epochs * epoch_steps, t.num_steps, step_epochs * epoch_steps))
  t.lr_gamma = 0.5


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('afb_urr', arg, ('default', 'davis', 'youtube', 'tiny', 'small'),
                        'default')
  config = ml_collections.ConfigDict()
  config.model = 'afb_urr'
  # Official .pth / .npz state_dict (wrapped or bare), or an orbax folder
  # written by ``python -m memvos_jax.convert --model afb_urr`` or by training
  # (``<workdir>/export``). Empty: random init. For training: the initial weights
  # (e.g. the pre-training result for ``davis`` / ``youtube``, official ``--resume``).
  config.checkpoint = ''

  # backbone: both encoders' ResNet trunk (official resnet50; nn/resnet.py names);
  # decoder_dims: the URR decoder's (global, local) widths (official (256, 32)).
  config.network = ml_collections.ConfigDict(dict(
      key_dim=128, value_dim=512, backbone='resnet50', decoder_dims=(256, 32)))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict()
  config.inference.size = 0               # segment at this shorter side (0: native)
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

  t = training.supervised(config)
  t.batch_size = 1              # official DataLoader batch_size=1
  t.num_frames = 6              # official --clip-n
  t.max_objects = 2             # official --obj-n 3 (background included)
  t.crop_size = 400             # official output_size
  t.frame_sampling = 'shuffle'  # official: random.shuffle(frames)[:clip_n]
  t.optimizer = 'adamw'         # official torch.optim.AdamW(params, lr)
  t.weight_decay = 0.01         # torch AdamW's default (the official code sets none)
  t.warmup_steps = 0
  # The loss: CrossEntropyLoss + lu * uncertainty (official --lu 0.5).
  t.lu = 0.5
  # DAVIS_Train_DS: RandomResizedCrop(400, scale=(0.8, 1)) (PreTrain_DS the same).
  config.data.crop_scale = (0.8, 1.0)
  config.data.davis_repeat = 1  # one pass over the DAVIS clips per epoch
  _epochs(config, 1e-5, 25, 100, DAVIS17_TRAIN_CLIPS)   # train.py defaults

  if arg == 'runlocal':
    common.runlocal(config)
  if arg == 'davis':
    _epochs(config, 4e-6, 200, 1000, DAVIS17_TRAIN_CLIPS)
  if arg == 'youtube':
    _epochs(config, 4e-6, 30, 150, YOUTUBE18_TRAIN_CLIPS)
    config.data.crop_scale = (0.3, 0.5)  # YouTube_Train_DS: RandomResizedCrop(400, (0.3, 0.5))
  if arg == 'tiny':
    # Not official: a network and schedule that learn from random weights on a CPU.
    config.network = ml_collections.ConfigDict(dict(
        key_dim=32, value_dim=64, backbone='resnet18_w32', decoder_dims=(64, 16)))
    config.inference.size = 240           # held-out DAVIS validation / eval.py at 240 px
    config.inference.chunk = 4
    config.data.synthetic_length = 24
    config.data.frame_short_side = 240    # real frames read at 240 px (CPU time)
    config.data.crop_scale = (0.36, 1.0)  # more crop variety than the official 0.8-1
    t.init_rng = 'rbg'
    training.tiny_from_scratch(t)
    t.num_frames = 3
    t.frame_sampling = 'skip'
    t.lr_gamma = 0.1
  if arg == 'small':
    config.network = ml_collections.ConfigDict(dict(
        key_dim=64, value_dim=128, backbone='mobilenet_v2', decoder_dims=(64, 16)))
    config.inference.chunk = 4
    training.davis_from_imagenet(config)
    t.frame_sampling = 'skip'
    t.optimizer, t.weight_decay = 'adam', 1e-7     # the default model's optimiser
    t.num_steps, t.lr_steps, t.lr_gamma = 2000, (1700,), 0.1
    # The query trunk's stride-2..8 blocks keep their ImageNet weights; the memory
    # trunk's stem learns (its mask channels are fresh).
    t.freeze = 'encoder_q/features_[0-6]/|encoder_m/features_[1-6]/'
    t.checkpoint_every, t.eval_every = 100, 500
  config.lock()
  return config
