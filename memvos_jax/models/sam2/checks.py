"""SAM 2's own config keys checked before training builds anything (``Family.check_config``)."""

from memvos_jax.errors import InputError
from memvos_jax.models.sam2.modeling import SIZE_ALIASES, TRUNKS


def _need(ok: bool, key: str, problem: str):
  if not ok:
    raise InputError(f'config.{key}', problem)


def check_config(config) -> None:
  """The network size and image size, the prompt simulation, the loss and the optimiser."""
  n, t, inf = config.network, config.training, config.inference
  size = SIZE_ALIASES.get(n.size, n.size)
  _need(size in TRUNKS, 'network.size', f'{n.size!r} is not one of {sorted(TRUNKS)}')
  _need(n.image_size >= 64 and n.image_size % 32 == 0, 'network.image_size',
        f'{n.image_size} must be a multiple of 32 and >= 64 (Hiera strides 4 to 32, '
        'windows of 8 at stride 4)')
  _need(t.crop_size == n.image_size, 'training.crop_size',
        f'{t.crop_size} must equal network.image_size ({n.image_size}): SAM 2 trains on '
        'square frames of its image size (official RandomResizeAPI to scratch.resolution)')
  _need(t.stage == 3, 'training.stage', 'SAM 2 trains on videos (stage 3)')
  _need(not t.backbone_init, 'training.backbone_init',
        'has no ImageNet mapping for Hiera: start from an official SAM 2 checkpoint '
        '(config.checkpoint)')
  _need(t.compute_dtype == 'float32', 'training.compute_dtype',
        f'{t.compute_dtype!r}: SAM 2 trains in float32 here')
  _need(t.optimizer == 'adamw', 'training.optimizer',
        f'{t.optimizer!r}: SAM 2 trains with the official AdamW (models/sam2/optim.py)')
  for key in ('prob_to_use_pt_input', 'prob_to_use_box_input', 'prob_to_sample_from_gt'):
    _need(0.0 <= t[key] <= 1.0, f'training.{key}', f'{t[key]} is not a probability')
  _need(1 <= t.num_init_cond_frames <= t.num_frames, 'training.num_init_cond_frames',
        f'{t.num_init_cond_frames} must be in 1..num_frames ({t.num_frames})')
  _need(t.num_frames_to_correct <= t.num_frames, 'training.num_frames_to_correct',
        f'{t.num_frames_to_correct} must be <= num_frames ({t.num_frames})')
  if t.prob_to_use_pt_input > 0:   # official assert
    _need(t.num_frames_to_correct >= t.num_init_cond_frames, 'training.num_frames_to_correct',
          f'{t.num_frames_to_correct} must be >= num_init_cond_frames '
          f'({t.num_init_cond_frames}) with point inputs')
  _need(t.num_correction_pt_per_frame >= 0, 'training.num_correction_pt_per_frame',
        'must be >= 0')
  _need(inf.max_obj_ptrs_in_encoder >= 1, 'inference.max_obj_ptrs_in_encoder', 'must be >= 1')
  for key in ('loss_mask', 'loss_dice', 'loss_iou', 'loss_class'):
    _need(t[key] >= 0, f'training.{key}', 'must be >= 0 (a loss weight)')
  _need(t.focal_gamma >= 0 and t.focal_gamma_obj_score >= 0, 'training.focal_gamma',
        'focal gammas must be >= 0')
  _need(t.vision_lr > 0, 'training.vision_lr', 'must be > 0')
  _need(0 <= t.lr_end_factor <= 1, 'training.lr_end_factor', 'must be in [0, 1]')
  _need(0 < t.layer_decay <= 1, 'training.layer_decay', 'must be in (0, 1]')
  _need(t.weight_decay >= 0, 'training.weight_decay', 'must be >= 0')
  _need(t.grad_clip_norm >= 0, 'training.grad_clip_norm', 'must be >= 0 (0: no clipping)')
