"""SAM 2 (``SAM2Base``): the parts tied together, one method per stage of a frame.

The methods are pure functions of one object (no batch axis) except
``encode_image``; control flow across frames, objects and prompts lives in
``memvos_jax.models.sam2.predictor``. Parameter names follow the official
state_dict (``image_encoder``, ``memory_attention``, ``memory_encoder``,
``sam_prompt_encoder``, ``sam_mask_decoder``, ``obj_ptr_proj``, ...).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from memvos_jax.models.sam2.common import (MLP, bilinear_aa_matrix, conv, dense, resize_with,
                                           sine_pe_1d, sine_pe_2d)
from memvos_jax.models.sam2.hiera import ImageEncoder
from memvos_jax.models.sam2.mask_decoder import MaskDecoder, select_masks
from memvos_jax.models.sam2.memory_attention import MemoryAttention
from memvos_jax.models.sam2.memory_encoder import MemoryEncoder
from memvos_jax.models.sam2.prompt_encoder import PromptEncoder

NO_OBJ_SCORE = -1024.0
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)

# Hiera trunks of the released SAM 2.1 configs (sam2/configs/sam2.1/sam2.1_hiera_*.yaml).
TRUNKS = {
    'tiny': dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                 window_spec=(8, 4, 14, 7), window_pos_embed_bkg_spatial_size=(7, 7)),
    'small': dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
                  window_spec=(8, 4, 14, 7), window_pos_embed_bkg_spatial_size=(7, 7)),
    'base_plus': dict(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3),
                      global_att_blocks=(12, 16, 20), window_spec=(8, 4, 14, 7),
                      window_pos_embed_bkg_spatial_size=(14, 14)),
    'large': dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
                  window_spec=(8, 4, 16, 8), window_pos_embed_bkg_spatial_size=(7, 7)),
}
SIZE_ALIASES = {'t': 'tiny', 's': 'small', 'b+': 'base_plus', 'base+': 'base_plus', 'l': 'large'}


def trunk_items(size: str) -> tuple:
  """The hashable trunk spec of a released size (tiny/small/base_plus/large, or t/s/b+/l)."""
  size = SIZE_ALIASES.get(size, size)
  if size not in TRUNKS:
    raise ValueError(f'unknown SAM 2 size {size!r} (known: {", ".join(TRUNKS)})')
  return tuple(TRUNKS[size].items())


class SAM2(nn.Module):
  """SAM 2.1 with the official inference options of the released configs."""
  trunk: Any = tuple(TRUNKS['tiny'].items())
  image_size: int = 1024
  hidden_dim: int = 256
  mem_dim: int = 64
  num_maskmem: int = 7
  memory_attention_layers: int = 4
  sigmoid_scale_for_mem_enc: float = 20.0
  sigmoid_bias_for_mem_enc: float = -10.0
  dynamic_multimask_via_stability: bool = True
  dynamic_multimask_stability_delta: float = 0.05
  dynamic_multimask_stability_thresh: float = 0.98
  # A graph for training (the same values, far smaller to differentiate and compile):
  # the memory read as one masked softmax instead of frame blocks that skip absent
  # frames, the memory encoder's depthwise 7x7 as one grouped convolution instead of
  # 49 shifted multiply-adds (the defaults are the faster ones for inference on CPUs).
  compact_graph: bool = False

  def setup(self):
    c, m = self.hidden_dim, self.mem_dim
    self.image_encoder = ImageEncoder(dict(self.trunk), c)
    self.memory_attention = MemoryAttention(c, self.memory_attention_layers,
                                            blocked=not self.compact_graph)
    self.memory_encoder = MemoryEncoder(m, c, grouped_dwconv=self.compact_graph)
    self.sam_prompt_encoder = PromptEncoder(c, self.image_size // 16, self.image_size)
    self.sam_mask_decoder = MaskDecoder(c)
    self.obj_ptr_proj = MLP(c, c, 3)
    self.obj_ptr_tpos_proj = dense(m)
    self.mask_downsample = conv(1, (4, 4), strides=(4, 4), padding='VALID')
    normal = nn.initializers.normal(0.02)
    self.maskmem_tpos_enc = self.param('maskmem_tpos_enc', normal, (self.num_maskmem, 1, 1, m))
    self.no_mem_embed = self.param('no_mem_embed', normal, (1, 1, c))
    self.no_mem_pos_enc = self.param('no_mem_pos_enc', normal, (1, 1, c))
    self.no_obj_ptr = self.param('no_obj_ptr', normal, (1, c))
    self.no_obj_embed_spatial = self.param('no_obj_embed_spatial', normal, (1, m))

  # --- image ---------------------------------------------------------------
  def encode_image(self, image):
    """[S, S, 3] uint8 RGB already resized to image_size -> backbone features of the frame."""
    x = image.astype(jnp.float32) / 255.0
    x = (x - jnp.asarray(IMG_MEAN, jnp.float32)) / jnp.asarray(IMG_STD, jnp.float32)
    feats, pos = self.image_encoder(x[None])
    s0, s1 = self.sam_mask_decoder.project_high_res(feats[0][0], feats[1][0])
    return dict(vision=feats[2][0], vision_pos=pos[2], s0=s0, s1=s1)

  # --- memory conditioning ---------------------------------------------------
  def no_memory(self, vision):
    """Initial conditioning frame (``directly_add_no_mem_embed``)."""
    return vision + self.no_mem_embed[0]

  def memory_tokens(self, feats, tpos_idx, feat_valid, ptrs, ptr_pos, ptr_valid, t_diff_max):
    """Memory tokens, their encodings and validity.

    feats [S, h, w, Cm] (spatial memories), tpos_idx [S] int (row of
    maskmem_tpos_enc), feat_valid [S]; ptrs [P, C] object pointers with their
    signed temporal distance ptr_pos [P] and ptr_valid [P]. Returns
    (memory [M, Cm], memory_pos [M, Cm], key_mask [M], num_spatial).
    """
    s, h, w, m = feats.shape
    split = self.hidden_dim // m
    p = ptrs.shape[0]
    ptr_tokens = ptrs.reshape(p * split, m)
    tpos = self.obj_ptr_tpos_proj(sine_pe_1d(ptr_pos / t_diff_max, self.hidden_dim))
    # The memory encoder's sine encoding, in its output dtype (bfloat16 under autocast).
    pe = jnp.asarray(sine_pe_2d(h, w, m)).astype(tpos.dtype)              # [h, w, Cm]
    mpos = pe[None] + self.maskmem_tpos_enc[tpos_idx, 0, 0][:, None, None]   # [S, h, w, Cm]
    ptr_pe = jnp.repeat(tpos, split, axis=0)
    memory = jnp.concatenate([feats.reshape(s * h * w, m).astype(jnp.float32), ptr_tokens])
    memory_pos = jnp.concatenate([mpos.reshape(s * h * w, m), ptr_pe])
    mask = jnp.concatenate([jnp.repeat(feat_valid, h * w), jnp.repeat(ptr_valid, split)])
    return memory, memory_pos, mask, s * h * w

  def attend_memory(self, vision, vision_pos, memory, memory_pos, key_mask, num_spatial,
                    first=None):
    """Pixel features [h, w, C] conditioned on the memory; ``first``: ``attend_self``'s output."""
    return self.memory_attention(vision, vision_pos, memory, memory_pos, num_spatial, key_mask,
                                 first)

  def attend_self(self, vision, vision_pos):
    """The memory attention's first self-attention [h*w, C]: the same for every object."""
    return self.memory_attention.first_self_attention(vision, vision_pos)

  # --- SAM heads --------------------------------------------------------------
  def sam_heads(self, pix_feat, s0, s1, coords, labels, point_mask, mask_input, use_mask_input,
                multimask):
    """Prompt encoder + mask decoder + output choice + object pointer, one object.

    coords [P, 2] (input-image pixels), labels [P], point_mask [P] (valid
    tokens, including the official padding point); mask_input [4h, 4w]
    logits used where ``use_mask_input``; multimask: traced bool.
    """
    pe = self.sam_prompt_encoder
    sparse = pe.embed_points(coords, labels)
    dense_prompt = jnp.where(use_mask_input, pe.embed_mask(mask_input), pe.no_mask())
    masks, iou, tokens, score = self.sam_mask_decoder(pix_feat, pe.dense_pe(), sparse,
                                                      point_mask, dense_prompt, s0, s1)
    mask, _, token, choice = select_masks(
        masks, iou, tokens, multimask, self.dynamic_multimask_via_stability,
        self.dynamic_multimask_stability_delta, self.dynamic_multimask_stability_thresh)
    appearing = score > 0
    mask = jnp.where(appearing, mask, NO_OBJ_SCORE).astype(jnp.float32)   # official .float()
    lam = appearing.astype(jnp.float32)
    obj_ptr = lam * self.obj_ptr_proj(token) + (1 - lam) * self.no_obj_ptr[0]
    f32 = lambda a: a.astype(jnp.float32)   # bfloat16 under autocast; stored as float32
    return dict(low_res=mask, score=f32(score), obj_ptr=obj_ptr, iou=f32(iou), choice=choice)

  def mask_as_output(self, vision, s0, s1, mask):
    """``_use_mask_as_output``: a binary mask [S, S] becomes the output (+-10 logits)."""
    mask = mask.astype(jnp.float32)
    high = mask * 20.0 - 10.0
    s = mask.shape[-1]
    aa = bilinear_aa_matrix(s, s // 4)
    low = resize_with(high, aa, aa)
    down = self.mask_downsample(mask[..., None])[..., 0]
    coords = jnp.zeros((2, 2), jnp.float32)
    labels = jnp.full((2,), -1, jnp.int32)
    heads = self.sam_heads(vision, s0, s1, coords, labels, jnp.ones((2,), bool), down, True,
                           False)
    appearing = jnp.any(mask > 0)
    lam = appearing.astype(jnp.float32)
    obj_ptr = lam * heads['obj_ptr'] + (1 - lam) * self.no_obj_ptr[0]
    return dict(low_res=low, score=20.0 * lam - 10.0, obj_ptr=obj_ptr,
                iou=jnp.ones((4,), jnp.float32), choice=jnp.asarray(-1, jnp.int32))

  # --- memory encoder -----------------------------------------------------------
  def encode_memory(self, vision, high_res_logits, score, from_points):
    """``_encode_new_memory`` for one object: [S, S] logits -> [h, w, Cm] memory features."""
    mask = jnp.where(from_points, (high_res_logits > 0).astype(jnp.float32),
                     jax.nn.sigmoid(high_res_logits))
    mask = mask * self.sigmoid_scale_for_mem_enc + self.sigmoid_bias_for_mem_enc
    feats = self.memory_encoder(vision, mask)
    absent = (jnp.asarray(score) <= 0).astype(jnp.float32)
    return feats + absent * self.no_obj_embed_spatial[0]

  def __call__(self, image, masks=None):
    """Touches every parameter (for ``init``).

    image: one frame [S, S, 3] at ``image_size``. The training engine's random
    init passes a batch of frames and masks of another size
    (``training.state.init_variables``): the parameters do not depend on the
    input, so a zero frame of ``image_size`` is used instead.
    """
    del masks
    if image.ndim != 3 or image.shape[0] != self.image_size:
      image = jnp.zeros((self.image_size, self.image_size, 3), jnp.uint8)
    f = self.encode_image(image)
    h, w = f['vision'].shape[:2]
    mem = self.encode_memory(f['vision'], jnp.zeros((16 * h, 16 * w)), 1.0, True)
    memory, mpos, mask, ns = self.memory_tokens(mem[None], jnp.zeros((1,), jnp.int32),
                                                jnp.ones((1,), bool), jnp.zeros((1, self.hidden_dim)),
                                                jnp.ones((1,)), jnp.ones((1,), bool), 1.0)
    pix = self.attend_memory(self.no_memory(f['vision']), f['vision_pos'], memory, mpos, mask, ns)
    out = self.mask_as_output(pix, f['s0'], f['s1'], jnp.zeros((16 * h, 16 * w)))
    return out, self.no_mem_pos_enc
