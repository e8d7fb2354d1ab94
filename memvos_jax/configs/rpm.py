"""RPM-Net config: self-supervised training on unlabeled frames, label propagation.

Evaluation: ``python eval.py --config configs/rpm.py --config.checkpoint=runs/rpm/export
--config.data.root=DAVIS/2017/trainval --workdir=out``.
Training:   ``python train.py --config configs/rpm.py:tiny --workdir=runs/rpm``
(pairs of neighbouring frames from every JPEG folder under ``data.train_roots``;
annotations are never read).

Variants (``--config configs/rpm.py:<arg>``):
  paper  Table 1 of the supplement: FCN-ResNet-101, deformable matching (default);
  tiny   ResNet-18 with quarter-width stages, 128 px crops: trains in minutes on CPU.
  runlocal  paper, with small inference chunks for CPUs and tests.
The paper's training hyper-parameters are not in the specification we have
(the supplement); the optimiser values below are ours.
"""

import ml_collections

from memvos_jax.configs import common

_REPO_DATA = '../shared/data/real_clips/JPEGImages/bedroom'


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = common.variant('rpm', arg, ('paper', 'tiny'), 'paper')
  config = ml_collections.ConfigDict()
  config.model = 'rpm'
  # An orbax folder written by training (``<workdir>/export``) or an .npz from
  # ``convert.rpm.save_npz``. Empty: random init. No official weights exist.
  config.checkpoint = ''

  # Table 2 variants: matching='standard' with matching_layers 1/3/5, or
  # matching='dilated' with dilation 3/6/9 (3 layers).
  config.network = ml_collections.ConfigDict(dict(
      backbone='resnet101', width=32, planes=(64, 128, 256, 512),
      matching='deformable', matching_layers=3, dilation=1))

  config.data = common.eval_data()
  # Training: comma-separated folders searched recursively for folders of
  # JPEG frames (a DAVIS/YouTube-VOS root works; annotations are ignored).
  config.data.train_roots = _REPO_DATA
  config.data.short_side = 320   # frames resized to this shorter side before cropping

  config.inference = ml_collections.ConfigDict()
  config.inference.propagate = 'hard'    # 'hard': t-1 mask; 'soft': t-1 probabilities
  # 'full': layer 109 on the full-resolution mask (displacements upsampled);
  # 'stride4': Table 1 literally (mask averaged to stride 4, result upsampled).
  config.inference.resolution = 'full'
  # Subtract the field the network predicts for a frame against itself (its
  # systematic part, see docs/rpm.md); False = the matching output as is.
  config.inference.calibrate = True
  common.scan_options(config.inference, chunk=8)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0       # 0 = the clip's object count (static per clip)

  t = config.training = ml_collections.ConfigDict()
  t.seed = 0
  t.batch_size = 8            # frame pairs per update
  t.num_steps = 100_000
  t.crop_size = 256
  t.max_gap = 3               # reference frame 1..max_gap frames before the target
  t.max_shift = 8             # reference crop shifted by up to this many pixels (extra motion)
  t.reverse_prob = 0.5        # swap target and reference (time reversal)
  t.flip_prob = 0.5           # horizontal flip of both frames
  # Adam with weight decay added to the gradient, step decay (training/state.py).
  t.learning_rate = 1e-4
  t.weight_decay = 0.0
  t.lr_steps = (80_000,)
  t.lr_gamma = 0.1
  t.warmup_steps = 0          # linear learning-rate warm-up (training/state.py); 0: none
  t.log_every = 100
  t.checkpoint_every = 10_000

  if arg == 'tiny':
    config.network = ml_collections.ConfigDict(dict(
        backbone='resnet18', width=32, planes=(16, 32, 64, 128),
        matching='deformable', matching_layers=3, dilation=1))
    config.inference.chunk = 4
    config.data.short_side = 160
    t.batch_size = 4
    t.num_steps = 300
    t.crop_size = 128
    t.max_gap = 5
    t.learning_rate = 1e-3
    t.lr_steps = (240,)
    t.log_every = 20
    t.checkpoint_every = 0   # only the final export
  if arg == 'runlocal':
    common.runlocal(config)
  config.lock()
  return config
