"""SAM 2 mask decoder: two-way transformer, upscaling with high-res skips, hypernetwork masks, heads.

Returns all four masks/IoUs/tokens plus the object-score logit; the
multimask / dynamic-stability / single selection is ``select_masks`` (a
traced flag, so one compiled program serves both prompting and tracking).
"""

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.models.sam2.common import (MLP, PREC, ConvTranspose2x2, Embedding, conv, dense,
                                           gelu, layer_norm, layer_norm_2d, sdpa)


class Attention(nn.Module):
  """SAM ``Attention``: q/k/v/out projections, optional internal downsampling, key mask."""
  embedding_dim: int
  num_heads: int
  downsample_rate: int = 1
  q_chunk: int = 0

  @nn.compact
  def __call__(self, q, k, v, key_mask=None):
    internal = self.embedding_dim // self.downsample_rate
    q = dense(internal, name='q_proj')(q)
    k = dense(internal, name='k_proj')(k)
    v = dense(internal, name='v_proj')(v)
    split = lambda t: t.reshape(*t.shape[:-1], self.num_heads, -1)
    out = sdpa(split(q), split(k), split(v), key_mask, self.q_chunk)
    return dense(self.embedding_dim, name='out_proj')(out.reshape(*out.shape[:-2], internal))


class TwoWayAttentionBlock(nn.Module):
  dim: int = 256
  num_heads: int = 8
  mlp_dim: int = 2048
  skip_first_layer_pe: bool = False

  @nn.compact
  def __call__(self, queries, keys, query_pe, key_pe, token_mask):
    if self.skip_first_layer_pe:
      queries = Attention(self.dim, self.num_heads, name='self_attn')(queries, queries, queries,
                                                                      token_mask)
    else:
      q = queries + query_pe
      queries = queries + Attention(self.dim, self.num_heads, name='self_attn')(q, q, queries,
                                                                                token_mask)
    queries = layer_norm('norm1')(queries)
    q, k = queries + query_pe, keys + key_pe
    queries = queries + Attention(self.dim, self.num_heads, 2, name='cross_attn_token_to_image')(
        q, k, keys)
    queries = layer_norm('norm2')(queries)
    queries = queries + MLP(self.mlp_dim, self.dim, 2, name='mlp')(queries)
    queries = layer_norm('norm3')(queries)
    q, k = queries + query_pe, keys + key_pe
    keys = keys + Attention(self.dim, self.num_heads, 2, q_chunk=1024,
                            name='cross_attn_image_to_token')(k, q, queries, token_mask)
    keys = layer_norm('norm4')(keys)
    return queries, keys


class TwoWayTransformer(nn.Module):
  depth: int = 2
  dim: int = 256
  num_heads: int = 8
  mlp_dim: int = 2048

  @nn.compact
  def __call__(self, image, image_pe, tokens, token_mask):
    """image, image_pe [N, C]; tokens [T, C]; token_mask [T] bool."""
    queries, keys = tokens, image
    for i in range(self.depth):
      queries, keys = TwoWayAttentionBlock(self.dim, self.num_heads, self.mlp_dim, i == 0,
                                           name=f'layers_{i}')(queries, keys, tokens, image_pe,
                                                               token_mask)
    q, k = queries + tokens, keys + image_pe
    queries = queries + Attention(self.dim, self.num_heads, 2, name='final_attn_token_to_image')(
        q, k, keys)
    return layer_norm('norm_final_attn')(queries), keys


class MaskDecoder(nn.Module):
  dim: int = 256
  num_multimask_outputs: int = 3
  iou_head_hidden_dim: int = 256

  def setup(self):
    d, n_mask = self.dim, self.num_multimask_outputs + 1
    self.obj_score_token = Embedding(1, d)
    self.iou_token = Embedding(1, d)
    self.mask_tokens = Embedding(n_mask, d)
    self.transformer = TwoWayTransformer(dim=d)
    self.output_upscaling_0 = ConvTranspose2x2(d // 4)
    self.output_upscaling_1 = layer_norm_2d()
    self.output_upscaling_3 = ConvTranspose2x2(d // 8)
    self.conv_s0 = conv(d // 8, (1, 1))
    self.conv_s1 = conv(d // 4, (1, 1))
    self.output_hypernetworks_mlps = [MLP(d, d // 8, 3) for _ in range(n_mask)]
    self.iou_prediction_head = MLP(self.iou_head_hidden_dim, n_mask, 3, sigmoid_output=True)
    self.pred_obj_score_head = MLP(d, 1, 3)

  def project_high_res(self, f0, f1):
    """Neck levels at strides 4 and 8 -> conv_s0 / conv_s1 (official ``forward_image``)."""
    return self.conv_s0(f0), self.conv_s1(f1)

  def __call__(self, image_embeddings, image_pe, sparse, sparse_mask, dense_prompt, feat_s0,
               feat_s1):
    """One object.

    image_embeddings, image_pe, dense_prompt [h, w, C]; sparse [P, C] with
    sparse_mask [P]; feat_s0 [4h, 4w, C/8], feat_s1 [2h, 2w, C/4] (already
    through conv_s0/conv_s1). Returns masks [4, 4h, 4w], iou [4],
    mask_tokens [4, C], object_score_logit [].
    """
    n_mask = self.num_multimask_outputs + 1
    out_tokens = jnp.concatenate([self.obj_score_token(), self.iou_token(),
                                  self.mask_tokens()], axis=0)
    tokens = jnp.concatenate([out_tokens, sparse], axis=0)
    token_mask = jnp.concatenate([jnp.ones((out_tokens.shape[0],), bool), sparse_mask])
    h, w, c = image_embeddings.shape
    src = (image_embeddings + dense_prompt).reshape(h * w, c)
    hs, src = self.transformer(src, image_pe.reshape(h * w, c), tokens, token_mask)
    mask_tokens_out = hs[2:2 + n_mask]

    src = src.reshape(h, w, c)
    up = gelu(self.output_upscaling_1(self.output_upscaling_0(src) + feat_s1))
    up = gelu(self.output_upscaling_3(up) + feat_s0)
    hyper = jnp.stack([self.output_hypernetworks_mlps[i](mask_tokens_out[i])
                       for i in range(n_mask)])                            # [4, C/8]
    masks = jnp.einsum('mc,hwc->mhw', hyper, up, precision=PREC)          # [4, 4h, 4w]
    iou = self.iou_prediction_head(hs[1])
    score = self.pred_obj_score_head(hs[0])[0]
    return masks, iou, mask_tokens_out, score


def stability_scores(mask_logits, delta):
  """[..., H, W] -> [...]: IoU of the masks thresholded at +delta and -delta."""
  area_i = jnp.sum(mask_logits > delta, axis=(-2, -1)).astype(jnp.float32)
  area_u = jnp.sum(mask_logits > -delta, axis=(-2, -1)).astype(jnp.float32)
  return jnp.where(area_u > 0, area_i / jnp.maximum(area_u, 1.0), 1.0)


def select_masks(masks, iou, tokens, multimask, dynamic=True, delta=0.05, thresh=0.98):
  """The official output choice for one object.

  masks [4, H, W], iou [4], tokens [4, C]; multimask: traced bool.
  multimask: the highest-IoU mask of 1..3 and its token (multimask token for
  the object pointer); else token 0 and mask 0 unless it is unstable
  (``dynamic``), then the highest-IoU multimask mask (the pointer stays token 0).
  Returns (mask [H, W], iou [], token [C], choice [] int32: index 0..3).
  """
  best = 1 + jnp.argmax(iou[1:])
  single = jnp.asarray(0)
  if dynamic:
    stable = stability_scores(masks[0], delta) >= thresh
    single = jnp.where(stable, 0, best)
  choice = jnp.where(multimask, best, single).astype(jnp.int32)
  token = jnp.where(multimask, tokens[best], tokens[0])
  return masks[choice], iou[choice], token, choice
