"""One object on one frame of SAM 2 video tracking, as pure functions of (model, params).

Shared by the predictor's propagation scan (``memvos_jax.models.sam2.predictor``)
and the clip-driver step (``memvos_jax.models.sam2.inference``), so both run the
same traced computation:
  * ``track``: a non-conditioning frame (official ``track_step`` without
    prompts): memory read at exact temporal offsets, memory attention, SAM
    heads with the tracking multimask choice, memory encoding, ring write;
  * ``mask_prompt``: a mask given on a frame (``add_new_mask``): the mask is
    the output (``_use_mask_as_output``) and its memory is encoded as the
    official ``propagate_in_video_preflight`` does (binarised).
"""

import jax
import jax.numpy as jnp

from memvos_jax.nn.layers import resize_bilinear
import memvos_jax.models.sam2.memory_bank as mb
from memvos_jax.models.sam2.common import bilinear_aa_matrix, resize_with


def encode(model, params, image):
  """[S, S, 3] uint8 frame -> features dict: the backbone's (vision, vision_pos, s0, s1) and
  ``self0``, the memory attention's first self-attention, computed once for all objects."""
  feats = model.apply(params, image, method='encode_image')
  self0 = model.apply(params, feats['vision'], feats['vision_pos'], method='attend_self')
  return dict(feats, self0=self0)


def no_features(model, params, image):
  """Zeros shaped like ``encode``'s output (a frame that needs no features)."""
  shapes = jax.eval_shape(lambda: encode(model, params, image))
  return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)


def high_res(model, low_res):
  """[..., 4h, 4w] logits -> [..., S, S] (torch bilinear, align_corners=False)."""
  s = model.image_size
  return resize_bilinear(low_res[..., None], (s, s))[..., 0]


def encode_memory(model, params, feats, low_res, score, binarize):
  """Memory features [h, w, Cm] bfloat16 of an output (stored in bfloat16 as official)."""
  out = model.apply(params, feats['vision'], high_res(model, low_res), score, binarize,
                    method='encode_memory')
  return out.astype(jnp.bfloat16)


def tracking_multimask(settings) -> bool:
  return bool(settings.multimask_output_in_sam and settings.multimask_output_for_tracking and (
      settings.multimask_min_pt_num <= 0 <= settings.multimask_max_pt_num))


def condition(model, params, settings, feats, mem, frame, sign, num_frames):
  """Pixel features conditioned on the object's memory (``_prepare_memory_conditioned_features``).

  feats: ``encode``'s dict, whose ``self0`` is reused, or the backbone's alone.
  """
  read = mb.read(mem, frame, sign, num_frames, model.num_maskmem,
                 settings.max_obj_ptrs_in_encoder)
  memory, mpos, kmask, ns = model.apply(params, *read, method='memory_tokens')
  return model.apply(params, feats['vision'], feats['vision_pos'], memory, mpos, kmask, ns,
                     feats.get('self0'), method='attend_memory')


def track(model, params, settings, feats, mem, frame, sign, num_frames):
  """A tracked frame of one object -> (outputs dict, memory features, memory after the write)."""
  pix = condition(model, params, settings, feats, mem, frame, sign, num_frames)
  coords = jnp.zeros((2, 2), jnp.float32)
  labels = jnp.full((2,), -1, jnp.int32)
  s = 4 * feats['vision'].shape[0]
  out = model.apply(params, pix, feats['s0'], feats['s1'], coords, labels, jnp.ones((2,), bool),
                    jnp.zeros((s, s)), False, tracking_multimask(settings), method='sam_heads')
  maskmem = encode_memory(model, params, feats, out['low_res'], out['score'], False)
  return out, maskmem, mb.write(mem, maskmem, out['obj_ptr'], frame)


def resize_mask(mask, size: int):
  """A binary mask [H, W] -> [S, S] float 0/1 as ``add_new_mask`` (antialiased bilinear, >= 0.5)."""
  m = mask.astype(jnp.float32)
  if m.shape == (size, size):
    return m
  m = resize_with(m, bilinear_aa_matrix(m.shape[0], size), bilinear_aa_matrix(m.shape[1], size))
  return (m >= 0.5).astype(jnp.float32)


def mask_prompt(model, params, settings, feats, mask):
  """A mask [S, S] (0/1) given on a frame -> (outputs dict, memory features)."""
  out = model.apply(params, feats['vision'], feats['s0'], feats['s1'], mask,
                    method='mask_as_output')
  maskmem = encode_memory(model, params, feats, out['low_res'], out['score'],
                          settings.binarize_mask_from_pts_for_mem_enc)
  return out, maskmem
