"""SAM 2 memory attention: self-attention and cross-attention to memories with 2-D axial RoPE.

The memory is a fixed number of tokens with a validity mask: spatial memory
tokens (frame-major, each frame h*w positions, RoPE applied with the frame's
grid positions) followed by object-pointer tokens (no RoPE). Masked tokens are
left out of the softmax exactly, so the result equals the official
concatenation of only the present memories.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.models.sam2.common import dense, layer_norm, sdpa, sdpa_blocked


def axial_rope_angles(dim: int, h: int, w: int, theta: float = 10000.0) -> np.ndarray:
  """``compute_axial_cis`` angles: [h*w, dim/2] (x frequencies, then y frequencies)."""
  freqs = 1.0 / (theta ** (np.arange(0, dim, 4)[:dim // 4].astype(np.float32) / dim))
  t = np.arange(h * w, dtype=np.float32)
  tx, ty = t % w, np.floor(t / w)
  return np.concatenate([np.outer(tx, freqs), np.outer(ty, freqs)], axis=-1).astype(np.float32)


def apply_rope(x, angles):
  """Rotate consecutive channel pairs of x [..., N, nh, d] by angles [N, d/2] (float32)."""
  xr = x.reshape(*x.shape[:-1], -1, 2)
  cos, sin = jnp.cos(angles)[:, None], jnp.sin(angles)[:, None]
  a, b = xr[..., 0], xr[..., 1]
  out = jnp.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(x.shape)
  return out.astype(x.dtype)   # bfloat16 q, k: rotated in float32, as official


class RoPEAttention(nn.Module):
  """``RoPEAttention``: q gets RoPE; the first ``num_k_rope`` keys get it with positions tiled."""
  embedding_dim: int = 256
  num_heads: int = 1
  q_chunk: int = 1024
  blocked: bool = True     # masked memory read by frame blocks (False: one masked softmax)

  @nn.compact
  def __call__(self, q, k, v, hw, num_k_rope=None, key_mask=None):
    """q [Nq, C]; k, v [Nk, Ckv]; hw = (h, w) with Nq = h*w."""
    c = self.embedding_dim
    split = lambda t: t.reshape(t.shape[0], self.num_heads, -1)
    q = split(dense(c, name='q_proj')(q))
    k = split(dense(c, name='k_proj')(k))
    v = split(dense(c, name='v_proj')(v))
    ang = jnp.asarray(axial_rope_angles(c // self.num_heads, hw[0], hw[1]))
    q = apply_rope(q, ang)
    nr = k.shape[0] if num_k_rope is None else num_k_rope
    if nr:
      reps = nr // ang.shape[0]
      k_rope = apply_rope(k[:nr], jnp.tile(ang, (reps, 1)))
      k = jnp.concatenate([k_rope, k[nr:]], axis=0)
    if key_mask is None or not self.blocked:
      out = sdpa(q, k, v, key_mask, self.q_chunk)
    else:   # memory frames as key blocks: frames absent from the memory cost nothing
      # Only the spatial memories are frame blocks: the object pointers after them are
      # masked one by one (however many: 64 pointer tokens are one 8x8 frame's worth).
      out = sdpa_blocked(q, k, v, key_mask, ang.shape[0], nr)
    return dense(c, name='out_proj')(out.reshape(out.shape[0], c))


class MemoryAttentionLayer(nn.Module):
  d_model: int = 256
  dim_feedforward: int = 2048
  blocked: bool = True

  def setup(self):
    self.norm1, self.norm2, self.norm3 = (layer_norm() for _ in range(3))
    self.self_attn = RoPEAttention(self.d_model)
    self.cross_attn_image = RoPEAttention(self.d_model, blocked=self.blocked)
    self.linear1 = dense(self.dim_feedforward)
    self.linear2 = dense(self.d_model)

  def self_attend(self, tgt, hw):
    """The self-attention half: tgt [N, C] -> [N, C] (no memory involved)."""
    t2 = self.norm1(tgt)
    return tgt + self.self_attn(t2, t2, t2, hw)

  def cross_attend(self, tgt, memory, memory_pos, hw, num_k_rope, key_mask):
    """Cross-attention to the memory and the MLP: tgt [N, C] -> [N, C]."""
    t2 = self.norm2(tgt)
    tgt = tgt + self.cross_attn_image(t2, memory + memory_pos, memory, hw, num_k_rope, key_mask)
    t2 = self.linear2(jax.nn.relu(self.linear1(self.norm3(tgt))))
    return tgt + t2

  def __call__(self, tgt, memory, memory_pos, hw, num_k_rope, key_mask):
    return self.cross_attend(self.self_attend(tgt, hw), memory, memory_pos, hw, num_k_rope,
                             key_mask)


class MemoryAttention(nn.Module):
  """Layers of self-attention, cross-attention to the memory and MLP, then a LayerNorm.

  The first layer's self-attention reads only the frame's features, so for
  several objects on one frame it can be computed once (``first_self_attention``)
  and passed to each object's call as ``first``.
  """
  d_model: int = 256
  num_layers: int = 4
  # True: the memory read skips absent memory frames (``sdpa_blocked``, inference);
  # False: one masked softmax over all tokens (training: cheaper to differentiate).
  blocked: bool = True

  def setup(self):
    self.layers = [MemoryAttentionLayer(self.d_model, blocked=self.blocked)
                   for _ in range(self.num_layers)]
    self.norm = layer_norm()

  def first_self_attention(self, curr, curr_pos):
    """curr, curr_pos [h, w, C] -> [h*w, C]: the input after layer 0's self-attention."""
    h, w, c = curr.shape
    return self.layers[0].self_attend((curr + 0.1 * curr_pos).reshape(h * w, c), (h, w))

  def __call__(self, curr, curr_pos, memory, memory_pos, num_spatial, key_mask, first=None):
    """curr, curr_pos [h, w, C]; memory, memory_pos [M, Cm]; the first ``num_spatial``
    memory tokens are spatial (RoPE), the rest object-pointer tokens; key_mask [M];
    first [h*w, C] or None: ``first_self_attention(curr, curr_pos)`` if already computed."""
    h, w, c = curr.shape
    x = self.first_self_attention(curr, curr_pos) if first is None else first
    for i, layer in enumerate(self.layers):
      if i:
        x = layer.self_attend(x, (h, w))
      x = layer.cross_attend(x, memory, memory_pos, (h, w), num_spatial, key_mask)
    return self.norm(x).reshape(h, w, c)
