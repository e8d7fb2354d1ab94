"""SAM prompt encoder: points/box corners -> sparse tokens, a mask -> dense embedding.

Points come as a fixed-size padded array with a validity mask (static shapes);
the mask decoder leaves invalid tokens out of every attention exactly. The
caller includes the official padding point (label -1) among the valid ones.
"""


import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from memvos_jax.models.sam2.common import PREC, Embedding, conv, gelu, layer_norm_2d


class PositionEmbeddingRandom(nn.Module):
  """Random Fourier features of normalised (x, y) coordinates."""
  num_pos_feats: int = 128

  def setup(self):
    self.positional_encoding_gaussian_matrix = self.param(
        'positional_encoding_gaussian_matrix', nn.initializers.normal(1.0), (2, self.num_pos_feats))

  def encode(self, coords):  # [..., 2] in [0, 1] -> [..., 2*num_pos_feats]
    c = 2 * coords - 1
    g = self.positional_encoding_gaussian_matrix   # bfloat16 under autocast (a matmul)
    c = jnp.einsum('...i,ij->...j', c.astype(g.dtype), g, precision=PREC)
    c = 2 * np.pi * c
    return jnp.concatenate([jnp.sin(c), jnp.cos(c)], axis=-1)

  def grid(self, h, w):  # -> [h, w, C]
    y = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
    x = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
    xy = jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None]), axis=-1)
    return self.encode(xy)


class PromptEncoder(nn.Module):
  embed_dim: int = 256
  image_embedding_size: int = 64
  input_image_size: int = 1024
  mask_in_chans: int = 16

  def setup(self):
    self.pe_layer = PositionEmbeddingRandom(self.embed_dim // 2)
    self.point_embeddings = [Embedding(1, self.embed_dim) for _ in range(4)]
    self.not_a_point_embed = Embedding(1, self.embed_dim)
    self.no_mask_embed = Embedding(1, self.embed_dim)
    c4, c = self.mask_in_chans // 4, self.mask_in_chans
    self.mask_downscaling_0 = conv(c4, (2, 2), strides=(2, 2), padding='VALID')
    self.mask_downscaling_1 = layer_norm_2d()
    self.mask_downscaling_3 = conv(c, (2, 2), strides=(2, 2), padding='VALID')
    self.mask_downscaling_4 = layer_norm_2d()
    self.mask_downscaling_6 = conv(self.embed_dim, (1, 1))

  def dense_pe(self):  # [h, w, C]
    return self.pe_layer.grid(self.image_embedding_size, self.image_embedding_size)

  def embed_points(self, coords, labels):
    """coords [..., P, 2] pixels of the input image (x, y); labels [..., P] int (-1 pad, 0, 1, 2, 3)."""
    pe = self.pe_layer.encode((coords + 0.5) / self.input_image_size)
    lab = labels[..., None]
    # In pe's dtype (official: in-place on the bfloat16 encoding under autocast), then
    # float32 (official: concatenated to a float32 tensor).
    pe = jnp.where(lab == -1, self.not_a_point_embed()[0].astype(pe.dtype), pe)
    for i in range(4):
      pe = jnp.where(lab == i, (pe + self.point_embeddings[i]()[0]).astype(pe.dtype), pe)
    return pe.astype(jnp.float32)

  def embed_mask(self, mask):  # [..., 4h, 4w] logits -> [..., h, w, C]
    x = mask[..., None]
    x = gelu(self.mask_downscaling_1(self.mask_downscaling_0(x)))
    x = gelu(self.mask_downscaling_4(self.mask_downscaling_3(x)))
    return self.mask_downscaling_6(x)

  def no_mask(self):  # [h, w, C]
    s = self.image_embedding_size
    return jnp.broadcast_to(self.no_mask_embed()[0], (s, s, self.embed_dim))

  def __call__(self, coords, labels):
    return self.embed_points(coords, labels), self.dense_pe(), self.no_mask()
