"""SAM 2.1 config: the four released sizes, the official inference options, the clip driver.

Evaluation (the official semi-supervised VOS protocol, ``tools/vos_inference.py``)::

  python eval.py --config configs/sam2.py:tiny --config.checkpoint=sam2.1_hiera_tiny.pt \
      --config.data.root=DAVIS/2017/trainval --workdir=out

Variants: ``get_config('tiny' | 'small' | 'base_plus' | 'large')`` (also
t/s/b+/l; ``runlocal``: tiny with small inference chunks); ``network.size``
must match the checkpoint. ``checkpoint`` is an
official ``sam2.1_hiera_<size>.pt`` ({"model": state_dict}), a flat .npz, or
an orbax folder (``python -m memvos_jax.convert --model sam2``).
``memvos_jax.models.sam2.predictor.Sam2Predictor.from_config(config)`` builds the
interactive predictor from the same config. The options are those of
``build_sam2_video_predictor`` with its post-processing (dynamic multimask
via stability, binarised prompted masks for the memory encoder),
``fill_hole_area`` 0 and ``add_all_frames_to_correct_as_cond``.

Training / fine-tuning (``python train.py --config configs/sam2.py:tiny
--config.checkpoint=sam2.1_hiera_tiny.pt --config.data.davis_root=...``):
every variant has the official fine-tuning recipe of
``sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml`` in
``config.training`` (AdamW, cosine learning rates 5e-6 / 3e-6 for the image
encoder, layer decay 0.9, weight decay 0.1, gradient clipping 0.1, clips of 8
frames at 1024 px, up to 3 objects, the official prompt probabilities and
``MultiStepMultiMasksAndIous`` weights); docs/training.md lists what differs.
``train_tiny``: SAM 2.1-T at 128 px, clips of 4 frames, batch 2, that learns on
a 2-core CPU (from random weights, or fine-tuning a checkpoint).
"""

import ml_collections

from memvos_jax.configs import common, training

SIZES = ('tiny', 'small', 'base_plus', 'large')
_ALIASES = {'t': 'tiny', 's': 'small', 'b+': 'base_plus', 'base+': 'base_plus', 'l': 'large'}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  local = arg == 'runlocal'          # the smallest size, small inference chunks
  train_tiny = arg == 'train_tiny'   # SAM 2.1-T trained at 128 px on a CPU
  arg = 'tiny' if local or train_tiny else arg
  size = _ALIASES.get(arg or 'tiny', arg or 'tiny')
  if size not in SIZES:
    raise ValueError(f'configs/sam2.py: unknown SAM 2 size {arg!r} '
                     f'(known: {", ".join(SIZES)}, runlocal, train_tiny)')
  config = ml_collections.ConfigDict()
  config.model = 'sam2'
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      size=size, image_size=1024, hidden_dim=256, mem_dim=64, num_maskmem=7,
      memory_attention_layers=4, sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
      dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
      dynamic_multimask_stability_thresh=0.98))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict(dict(
      max_obj_ptrs_in_encoder=16, multimask_output_in_sam=True, multimask_min_pt_num=0,
      multimask_max_pt_num=1, multimask_output_for_tracking=True,
      binarize_mask_from_pts_for_mem_enc=True, add_all_frames_to_correct_as_cond=True))
  common.scan_options(config.inference, chunk=4)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0        # 0 = the clip's object count (static per clip)
  # Conditioning (prompted) frames kept per object; 0 = what the protocol needs
  # (each object is given once: 1). Tracked frames: a fixed ring of 15.
  config.inference.memory_capacity = 0
  _training(config)
  if local:
    common.runlocal(config)
  if train_tiny:
    _train_tiny(config)
  config.lock()
  return config


def _training(config: ml_collections.ConfigDict) -> None:
  """The official fine-tuning recipe (``sam2.1_hiera_b+_MOSE_finetune.yaml``, ``SAM2Train``,
  ``MultiStepMultiMasksAndIous``) on the shared ``config.training`` block."""
  t = training.supervised(config)
  t.seed = 123                       # official trainer.seed_value
  t.batch_size = 8                   # official: 1 clip per GPU on 8 GPUs
  # 40 epochs of the MOSE sample list (1,246 videos x multiplier 2 / batch 8 = 311 steps).
  t.num_steps = 12_460
  t.crop_size = 1024                 # must equal network.image_size (scratch.resolution)
  t.num_frames = 8
  t.max_objects = 3                  # max_num_objects: objects visible on frame 0
  # Consecutive frames (RandomUniformSampler); here max skip 1: steps of 1 or 2 frames.
  t.max_skip_values = (1,)
  t.max_skip_boundaries = ()
  t.reverse_prob = 0.0
  t.init_rng = 'rbg'                 # random init only (fine-tuning loads config.checkpoint)
  # AdamW, cosine from lr to lr * lr_end_factor; the image encoder at vision_lr with
  # layer-wise decay on the Hiera trunk; no decay on biases and LayerNorm weights.
  t.optimizer = 'adamw'              # (models/sam2/optim.py, not the engine's Adam)
  t.learning_rate = 5e-6             # base_lr
  t.vision_lr = 3e-6                 # image_encoder.*
  t.lr_end_factor = 0.1
  t.lr_steps = ()                    # (the engine's step decay: unused, cosine instead)
  t.layer_decay = 0.9
  t.weight_decay = 0.1
  t.grad_clip_norm = 0.1             # 0: no clipping
  t.freeze_image_encoder = False     # official SAM2Train(freeze_image_encoder=...)
  # Prompts (SAM2Train, *_for_train): mask or points (then a box or a click) on 1-2
  # initial conditioning frames, correction clicks on those and maybe one more frame.
  t.prob_to_use_pt_input = 0.5
  t.prob_to_use_box_input = 0.5
  t.prob_to_sample_from_gt = 0.1
  t.num_frames_to_correct = 2
  t.rand_frames_to_correct = True
  t.num_init_cond_frames = 2
  t.rand_init_cond_frames = True
  t.num_correction_pt_per_frame = 7
  t.add_all_frames_to_correct_as_cond = True
  # The loss (MultiStepMultiMasksAndIous as configured by the training yaml).
  t.loss_mask = 20.0
  t.loss_dice = 1.0
  t.loss_iou = 1.0
  t.loss_class = 1.0
  t.focal_alpha = 0.25
  t.focal_gamma = 2.0
  t.supervise_all_iou = True
  t.iou_use_l1_loss = True
  t.focal_alpha_obj_score = -1.0
  t.focal_gamma_obj_score = 0.0
  t.checkpoint_every = 1_000
  t.log_every = 10                   # official log_freq
  t.eval_every = 0                   # official: no validation (mode train_only)


def _train_tiny(config: ml_collections.ConfigDict) -> None:
  """SAM 2.1-T at 128 px that learns on a 2-core CPU: 4 frames, batch 2, 2 objects, 3
  correction clicks, a larger learning rate (from random weights) over 1,000 steps."""
  config.network.image_size = 128
  config.inference.chunk = common.RUNLOCAL_CHUNK
  t = config.training
  t.crop_size = 128
  t.num_frames = 4
  t.batch_size = 2
  t.max_objects = 2
  t.num_correction_pt_per_frame = 3
  t.num_steps = 1_000
  t.learning_rate = 1e-4
  t.vision_lr = 1e-4
  t.warmup_steps = 20
  t.checkpoint_every = 100
  t.log_every = 10
  t.eval_every = 100                 # held-out J&F (synthetic clips, or data.heldout)
  t.eval_clips = 8
  t.eval_frames = 8
  config.data.synthetic_length = 24
