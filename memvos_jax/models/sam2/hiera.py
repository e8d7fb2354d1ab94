"""SAM 2 image encoder: the Hiera trunk (hieradet) and the FPN neck with sine position encodings.

Input [B, S, S, 3] normalised RGB (S = image_size, 1024 for the released
models); output the neck's levels at strides 4, 8, 16 (the stride-32 level is
only used top-down and then dropped, official ``scalp=1``) and their sine
position encodings.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.models.sam2.common import (MLP, PREC, bicubic_matrix, conv, dense, layer_norm,
                                           sdpa, sine_pe_2d)


def _max_pool2(x):  # [B, H, W, C] -> [B, H/2, W/2, C] (kernel 2, stride 2, floor)
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def window_partition(x, ws):
  """[B, H, W, C] -> ([B*nW, ws, ws, C], (Hp, Wp)), zero padding at the bottom/right."""
  b, h, w, c = x.shape
  ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
  x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
  hp, wp = h + ph, w + pw
  x = x.reshape(b, hp // ws, ws, wp // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, ws, ws, c), (hp, wp)


def window_unpartition(x, ws, pad_hw, hw):
  hp, wp = pad_hw
  b = x.shape[0] // (hp * wp // ws // ws)
  x = x.reshape(b, hp // ws, wp // ws, ws, ws, -1).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, hp, wp, -1)[:, :hw[0], :hw[1]]


class MultiScaleAttention(nn.Module):
  dim_out: int
  num_heads: int
  q_pool: bool = False

  @nn.compact
  def __call__(self, x):  # [B, H, W, C]
    b, h, w, _ = x.shape
    qkv = dense(3 * self.dim_out, name='qkv')(x).reshape(b, h * w, 3, self.num_heads, -1)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]        # [B, N, nh, d]
    if self.q_pool:
      q = _max_pool2(q.reshape(b, h, w, -1))
      h, w = q.shape[1:3]
      q = q.reshape(b, h * w, self.num_heads, -1)
    x = sdpa(q, k, v).reshape(b, h, w, -1)
    return dense(self.dim_out, name='proj')(x)


class MultiScaleBlock(nn.Module):
  dim_out: int
  num_heads: int
  q_stride: bool = False
  window_size: int = 0

  @nn.compact
  def __call__(self, x):  # [B, H, W, dim]
    dim = x.shape[-1]
    shortcut = x
    x = layer_norm('norm1', 1e-6)(x)
    if dim != self.dim_out:
      shortcut = dense(self.dim_out, name='proj')(x)
      if self.q_stride:
        shortcut = _max_pool2(shortcut)
    ws = self.window_size
    if ws > 0:
      hw = x.shape[1:3]
      x, pad_hw = window_partition(x, ws)
    x = MultiScaleAttention(self.dim_out, self.num_heads, self.q_stride, name='attn')(x)
    if self.q_stride:
      ws = self.window_size // 2
      hw = shortcut.shape[1:3]
      pad_hw = (hw[0] + (ws - hw[0] % ws) % ws, hw[1] + (ws - hw[1] % ws) % ws)
    if self.window_size > 0:
      x = window_unpartition(x, ws, pad_hw, hw)
    x = shortcut + x
    y = layer_norm('norm2', 1e-6)(x)
    return x + MLP(4 * self.dim_out, self.dim_out, 2, activation='gelu', name='mlp')(y)


class Hiera(nn.Module):
  """hieradet Hiera: returns the last block's output of each of the 4 stages."""
  embed_dim: int = 96
  num_heads: int = 1
  stages: Sequence[int] = (2, 3, 16, 3)
  global_att_blocks: Sequence[int] = (12, 16, 20)
  window_spec: Sequence[int] = (8, 4, 14, 7)
  window_pos_embed_bkg_spatial_size: Sequence[int] = (14, 14)

  @nn.compact
  def __call__(self, x):  # [B, S, S, 3] -> 4 x [B, S/4/2^i, S/4/2^i, C_i]
    x = conv(self.embed_dim, (7, 7), 'patch_embed_proj', strides=(4, 4),
             padding=((3, 3), (3, 3)))(x)
    h, w = x.shape[1:3]
    bh, bw = self.window_pos_embed_bkg_spatial_size
    w0 = self.window_spec[0]
    pos = self.param('pos_embed', nn.initializers.zeros, (1, self.embed_dim, bh, bw))
    pos_win = self.param('pos_embed_window', nn.initializers.zeros, (1, self.embed_dim, w0, w0))
    pos = jnp.einsum('oh,chw->cow', jnp.asarray(bicubic_matrix(bh, h)), pos[0], precision=PREC)
    pos = jnp.einsum('pw,cow->cop', jnp.asarray(bicubic_matrix(bw, w)), pos, precision=PREC)
    pos = pos + jnp.tile(pos_win[0], (1, h // w0, w // w0))
    x = x + jnp.transpose(pos, (1, 2, 0))[None]

    stage_ends = [sum(self.stages[:i]) - 1 for i in range(1, len(self.stages) + 1)]
    q_pool_blocks = [e + 1 for e in stage_ends[:-1]]
    dim, heads, cur_stage = self.embed_dim, self.num_heads, 1
    outputs = []
    for i in range(sum(self.stages)):
      dim_out = dim
      window = self.window_spec[cur_stage - 1]
      if i in self.global_att_blocks:
        window = 0
      if i - 1 in stage_ends:
        dim_out, heads, cur_stage = dim * 2, heads * 2, cur_stage + 1
      x = MultiScaleBlock(dim_out, heads, q_stride=i in q_pool_blocks, window_size=window,
                          name=f'blocks_{i}')(x)
      dim = dim_out
      if i in stage_ends:
        outputs.append(x)
    return outputs


class FpnNeck(nn.Module):
  """Lateral 1x1 convs (``convs_i/conv``, i=0 for the coarsest level), nearest top-down at 2 levels."""
  d_model: int = 256
  fpn_top_down_levels: Sequence[int] = (2, 3)

  @nn.compact
  def __call__(self, xs):
    n = len(xs) - 1
    out = [None] * len(xs)
    prev = None
    for i in range(n, -1, -1):
      lateral = conv(self.d_model, (1, 1), f'convs_{n - i}_conv')(xs[i])
      if i in self.fpn_top_down_levels and prev is not None:
        top_down = jnp.repeat(jnp.repeat(prev.astype(jnp.float32), 2, axis=1), 2, axis=2)
        prev = lateral + top_down          # float32, as official (bf16 laterals promoted)
      else:
        prev = lateral
      out[i] = prev
    return out


class ImageEncoder(nn.Module):
  """Hiera trunk + FPN neck, scalp 1: features at strides 4, 8, 16 and their sine encodings."""
  trunk: dict
  d_model: int = 256

  @nn.compact
  def __call__(self, x):
    feats = FpnNeck(self.d_model, name='neck')(Hiera(**self.trunk, name='trunk')(x))[:-1]
    pos = [jnp.asarray(sine_pe_2d(f.shape[1], f.shape[2], self.d_model)) for f in feats]
    return feats, pos
