"""SAM 2's optimiser: the official fine-tuning recipe (``sam2.1_hiera_b+_MOSE_finetune.yaml``).

AdamW (torch defaults: betas 0.9/0.999, eps 1e-8) after clipping the
gradient's global L2 norm to ``grad_clip_norm`` (0.1), with
  * learning rates on a cosine from ``learning_rate`` to ``learning_rate *
    lr_end_factor`` over the run (fvcore ``CosineParamScheduler``, ``where`` =
    step / num_steps): ``learning_rate`` (5e-6) for everything but the image
    encoder, ``vision_lr`` (3e-6) for ``image_encoder``;
  * layer-wise decay on the Hiera trunk (``layer_decay_param_modifier`` with
    Hiera's ``get_layer_id``): block i gets ``layer_decay ** (L - (i + 1))``, the
    patch embedding ``layer_decay ** L`` (L = blocks + 1), the position
    embeddings 1 (the ``*pos_embed*`` override);
  * weight decay 0.1, except biases and ``torch.nn.LayerNorm`` weights (0); the
    ``LayerNorm2d`` of the memory encoder, prompt encoder and mask decoder
    upscaling keep theirs, as the official matches the class by name. A group's
    decay is scaled by its learning rate (torch AdamW: p -= lr * wd * p).
Parameters matching ``training.freeze`` (and the image encoder with
``freeze_image_encoder``) get no update and no decay, and are left out of the
clipped norm (the official sets ``requires_grad = False``).
"""

import re

import jax
import jax.numpy as jnp
import optax

from memvos_jax.models.sam2.modeling import TRUNKS, SIZE_ALIASES

# Our names of the official ``LayerNorm2d`` modules (their weights are decayed).
_LAYERNORM2D = re.compile(r'(memory_encoder/mask_downsampler/encoder_\d+/'
                          r'|memory_encoder/fuser_layers_\d+/norm/'
                          r'|sam_prompt_encoder/mask_downscaling_\d+/'
                          r'|sam_mask_decoder/output_upscaling_1/)')
_BLOCK = re.compile(r'image_encoder/trunk/blocks_(\d+)/')


def _path(path) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in path) + '/'


def frozen_pattern(config) -> str:
  """The regex of parameters that do not train ('' when all train)."""
  t = config.training
  parts = [t.freeze] if t.freeze else []
  if t.freeze_image_encoder:
    parts.append('image_encoder/')
  return '|'.join(f'(?:{p})' for p in parts)


def num_blocks(config) -> int:
  size = SIZE_ALIASES.get(config.network.size, config.network.size)
  return sum(TRUNKS[size]['stages'])


def lr_scale(path: str, config) -> float:
  """The learning-rate multiplier of one parameter (its path 'a/b/c/') against ``learning_rate``."""
  t = config.training
  if not path.startswith('image_encoder/'):
    return 1.0
  scale = t.vision_lr / t.learning_rate
  if path.startswith('image_encoder/trunk/') and t.layer_decay != 1.0:
    layers = num_blocks(config) + 1
    if 'pos_embed' in path:
      layer_id = layers                # override: 1.0
    elif 'patch_embed' in path:
      layer_id = 0
    elif _BLOCK.match(path):
      layer_id = int(_BLOCK.match(path).group(1)) + 1
    else:
      layer_id = layers
    scale *= t.layer_decay ** (layers - layer_id)
  return scale


def decays(path: str) -> bool:
  """Weight decay applies (not a bias, not a ``torch.nn.LayerNorm`` weight)."""
  leaf = path.rstrip('/').rsplit('/', 1)[-1]
  if 'bias' in leaf:
    return False
  if leaf == 'scale' and not _LAYERNORM2D.search(path):
    return False           # flax LayerNorm 'scale' = torch LayerNorm weight
  return True


def lr_schedule(config):
  """Cosine from ``learning_rate`` to ``learning_rate * lr_end_factor`` over ``num_steps``
  (after an optional linear warm-up of ``warmup_steps``)."""
  t = config.training
  lr0, lr1, n = t.learning_rate, t.learning_rate * t.lr_end_factor, max(t.num_steps, 1)

  def schedule(step):
    where = jnp.asarray(step, jnp.float32) / n
    lr = lr1 + 0.5 * (lr0 - lr1) * (1.0 + jnp.cos(jnp.pi * where))
    if t.warmup_steps:
      lr = lr * jnp.minimum(1.0, (step + 1) / t.warmup_steps)
    return lr
  return schedule


def _scale_by_path(config) -> optax.GradientTransformation:
  """Multiply each update by its parameter's ``lr_scale`` (a constant per leaf)."""
  def update(updates, state, params=None):
    del params
    scaled = jax.tree_util.tree_map_with_path(
        lambda p, u: u * lr_scale(_path(p), config), updates)
    return scaled, state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make(config):
  """(optax transformation, lr schedule): the official AdamW recipe (module docstring)."""
  t = config.training
  schedule = lr_schedule(config)
  mask = lambda params: jax.tree_util.tree_map_with_path(lambda p, _: decays(_path(p)), params)
  chain = []
  if t.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(t.grad_clip_norm))
  chain += [optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
            optax.add_decayed_weights(t.weight_decay, mask=mask),
            optax.scale_by_learning_rate(schedule),
            _scale_by_path(config)]
  adamw = optax.chain(*chain)
  pattern = frozen_pattern(config)
  if not pattern:
    return adamw, schedule
  frozen = re.compile(pattern)
  labels = lambda params: jax.tree_util.tree_map_with_path(
      lambda p, _: 'frozen' if frozen.match(_path(p)) else 'train', params)
  return optax.multi_transform({'train': adamw, 'frozen': optax.set_to_zero()}, labels), schedule
