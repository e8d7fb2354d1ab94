"""Shared building blocks (torch-compatible semantics, NHWC layout).

Every block mirrors the PyTorch module of the official code so that converted
weights give the same numbers: explicit symmetric padding, bias where torch has
one, bilinear resizing with ``align_corners=False`` semantics, and CBAM.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


class Conv(nn.Module):
  """torch ``nn.Conv2d``: square kernel, symmetric zero padding (the params of ``nn.Conv``).

  The input may be a tuple of channel blocks (one input, concatenated in
  order) whose batch axes differ, e.g. ([K, H, W, C1] per-object features,
  [1, H, W, C2] features every object shares): each block is convolved with
  its slice of the kernel and the results are summed, so a shared block is
  convolved once rather than K times (the official code repeats it K times).
  In bfloat16 the blocks are concatenated instead (see below).
  """
  features: int
  kernel: int
  stride: int = 1
  # Zero padding: one int for all four sides (default dilation * (kernel // 2), as
  # torch's usual ``padding=k // 2``), or ((top, bottom), (left, right)).
  padding: Any = None
  use_bias: bool = True
  dtype: Any = None
  groups: int = 1      # torch ``groups`` (= channels: depthwise)
  dilation: int = 1

  @nn.compact
  def __call__(self, x):   # [B, H, W, Cin] or a tuple of [B|1, H, W, Ci] -> [B, H', W', features]
    parts = x if isinstance(x, tuple) else (x,)
    k = self.kernel
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, channels(x) // self.groups, self.features), jnp.float32)
    bias = (self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
            if self.use_bias else None)
    dtype = self.dtype or jnp.result_type(*parts, kernel, *([bias] if self.use_bias else []))
    if self.groups > 1:   # grouped: one input (channel blocks would cut the groups)
      x, w = concat(x).astype(dtype), kernel.astype(dtype)
      pads = _pads(self.padding, k, self.dilation)
      if self.groups == x.shape[-1] == self.features:
        y = depthwise(x, w, self.stride, self.dilation, pads)
      else:
        y = lax.conv_general_dilated(
            x, w, (self.stride,) * 2, pads, rhs_dilation=(self.dilation,) * 2,
            dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=self.groups)
      return y if bias is None else y + bias.astype(dtype)
    pads = _pads(self.padding, k, self.dilation)
    if len(parts) > 1 and dtype == jnp.bfloat16:
      # bfloat16 convolutions go to oneDNN, which XLA:CPU leaves for a ~200x slower
      # path when two convolutions are summed (measured 4 s vs 19 ms): one input.
      parts = (concat(x),)
    y, lo = None, 0
    for p in parts:
      c = p.shape[-1]
      t = lax.conv_general_dilated(
          p.astype(dtype), kernel[:, :, lo:lo + c].astype(dtype), (self.stride,) * 2,
          pads, rhs_dilation=(self.dilation,) * 2,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      y, lo = (t if y is None else y + t), lo + c
    return y if bias is None else y + bias.astype(dtype)


class Pointwise(nn.Module):
  """torch ``nn.Conv2d(cin, features, 1, bias=False)`` as a matrix product (kernel [1, 1, I, O]).

  XLA:CPU runs a 1x1 convolution's backward pass ~3x slower than the same
  product written as a dot (the MobileNet/EfficientNet blocks are mostly these).
  """
  features: int

  @nn.compact
  def __call__(self, x):  # [..., Cin] -> [..., features]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (1, 1, x.shape[-1], self.features), jnp.float32)
    return jnp.einsum('...c,co->...o', x, kernel[0, 0].astype(x.dtype))


def depthwise(x, kernel, stride: int, dilation: int, pads):
  """Depthwise convolution x [B, H, W, C] * kernel [k, k, 1, C] -> [B, H', W', C].

  k*k shifted (strided) multiply-adds in one fused loop: XLA:CPU's grouped
  convolution runs many times slower (62 ms vs 3 ms on a 64x64x256 map, 7x7).
  """
  k = kernel.shape[0]
  (t, b), (l, r) = pads
  xp = jnp.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
  oh = (xp.shape[1] - dilation * (k - 1) - 1) // stride + 1
  ow = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
  out = None
  for i in range(k):
    for j in range(k):
      tap = lax.slice(xp, (0, i * dilation, j * dilation, 0),
                      (xp.shape[0], i * dilation + stride * (oh - 1) + 1,
                       j * dilation + stride * (ow - 1) + 1, xp.shape[3]),
                      (1, stride, stride, 1)) * kernel[i, j, 0]
      out = tap if out is None else out + tap
  return out


def _pads(padding, kernel: int, dilation: int):
  """Conv's ``padding`` field -> ((top, bottom), (left, right))."""
  if padding is None:
    padding = dilation * (kernel // 2)
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  return tuple(tuple(p) for p in padding)


def conv(features: int, kernel: int, stride: int = 1, padding: Any = None,
         bias: bool = True, name: str | None = None, dtype=None, groups: int = 1,
         dilation: int = 1) -> Conv:
  """A torch ``nn.Conv2d`` look-alike: square kernel, symmetric zero padding."""
  return Conv(features, kernel, stride, padding, bias, dtype, groups, dilation, name=name)


def relu(x):
  """ReLU of an array or of each channel block of a tuple (see ``Conv``)."""
  return tuple(map(nn.relu, x)) if isinstance(x, tuple) else nn.relu(x)


def _window_reduce(x, k: int, stride: int, op, fill):
  """``op`` over every k x k window of x [B, H, W, C] at ``stride`` with torch's k // 2
  padding of ``fill`` -> [B, H', W', C]. Separable (rows, then columns) strided slices:
  2k operations an output, where XLA:CPU's reduce-window does k*k and runs several times
  slower (the ResNet stem's 3x3/2 max: 3 ms float32 and 20 ms bfloat16 on 135x240x64,
  this 0.8 ms; AFB-URR's 7x7/1 pools)."""
  p = k // 2
  h, w = x.shape[-3:-1]
  oh, ow = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
  span_h, span_w = stride * (oh - 1) + 1, stride * (ow - 1) + 1
  pad = [(0, 0)] * (x.ndim - 3) + [(p, span_h + k - 1 - h - p), (p, span_w + k - 1 - w - p),
                                   (0, 0)]
  xp = jnp.pad(x, pad, constant_values=fill)
  r = functools.reduce(op, [xp[..., i:i + span_h:stride, :, :] for i in range(k)])
  return functools.reduce(op, [r[..., j:j + span_w:stride, :] for j in range(k)])


def _reduce_window_max(x, k: int, stride: int):
  return nn.max_pool(x, (k, k), (stride, stride), padding=((k // 2, k // 2),) * 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x, k: int, stride: int):
  """torch ``max_pool2d(x, k, stride, padding=k // 2)``, [B, H, W, C] -> [B, H', W', C].

  The values of ``nn.max_pool`` (a reduce-window), computed by ``_window_reduce``
  in float32 (max is exact in any precision; bfloat16 elementwise ops are slow on
  CPUs). The gradient is the reduce-window's: one maximum a window, as in torch.
  """
  return _window_reduce(x.astype(jnp.float32), k, stride, jnp.maximum, -jnp.inf).astype(x.dtype)


def _max_pool_fwd(x, k, stride):
  return max_pool(x, k, stride), x


def _max_pool_bwd(k, stride, x, g):
  return jax.vjp(lambda x: _reduce_window_max(x, k, stride), x)[1](g)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool(x, k: int):
  """torch ``avg_pool2d(x, k, stride=1, padding=k // 2)`` (zeros counted), [B, H, W, C]."""
  return _window_reduce(x, k, 1, jnp.add, 0.0) / (k * k)


def channels(x) -> int:
  """Channels of an array, or of the concatenation of a tuple of channel blocks."""
  return sum(p.shape[-1] for p in x) if isinstance(x, tuple) else x.shape[-1]


def concat(x):
  """An array, or a tuple of channel blocks concatenated (batch axes broadcast)."""
  if not isinstance(x, tuple):
    return x
  batch = jnp.broadcast_shapes(*(p.shape[:-1] for p in x))
  return jnp.concatenate([jnp.broadcast_to(p, batch + p.shape[-1:]) for p in x], -1)


def _interp_matrix(n_in: int, n_out: int, scale: float | None) -> np.ndarray:
  """[n_out, n_in] weights of torch's bilinear (align_corners=False) along one axis.

  ``scale`` is torch's ``scale_factor`` when one was given (torch then uses
  1/scale_factor as the step), else the step is n_in / n_out.
  """
  step = (1.0 / scale) if scale is not None else n_in / n_out
  dst = np.arange(n_out, dtype=np.float64)
  src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  lam = (src - i0).astype(np.float32)
  m = np.zeros((n_out, n_in), np.float32)
  np.add.at(m, (np.arange(n_out), i0), 1.0 - lam)
  np.add.at(m, (np.arange(n_out), i1), lam)
  return m


def resize_bilinear(x: jnp.ndarray, out_hw: Sequence[int],
                    scale: float | None = None) -> jnp.ndarray:
  """Bilinear resize of ``x`` [..., H, W, C] as torch ``F.interpolate`` (align_corners=False)."""
  h, w = x.shape[-3], x.shape[-2]
  oh, ow = int(out_hw[0]), int(out_hw[1])
  if (h, w) == (oh, ow):
    return x
  mh = jnp.asarray(_interp_matrix(h, oh, scale), x.dtype)
  mw = jnp.asarray(_interp_matrix(w, ow, scale), x.dtype)
  x = jnp.einsum('oh,...hwc->...owc', mh, x)
  return jnp.einsum('pw,...hwc->...hpc', mw, x)


def upsample(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """``F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)``."""
  h, w = x.shape[-3], x.shape[-2]
  return resize_bilinear(x, (h * factor, w * factor), scale=float(factor))


class KeyValue(nn.Module):
  """Official STM / AFB-URR ``KeyValue``: parallel 3x3 key and value projections."""
  key_dim: int = 128
  value_dim: int = 512

  @nn.compact
  def __call__(self, x):  # [B, h, w, C] -> [B, h, w, Ck], [B, h, w, Cv]
    return conv(self.key_dim, 3, name='Key')(x), conv(self.value_dim, 3, name='Value')(x)


class ResBlock(nn.Module):
  """Pre-activation residual block of STM/STCN: relu-conv-relu-conv (+3x3 projection).

  The input may be a tuple of channel blocks (see ``Conv``).
  """
  out_dim: int
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] (or channel blocks) -> [B, H, W, out_dim]
    r = conv(self.out_dim, 3, name='conv1', dtype=self.dtype)(relu(x))
    r = conv(self.out_dim, 3, name='conv2', dtype=self.dtype)(nn.relu(r))
    if channels(x) != self.out_dim:
      return conv(self.out_dim, 3, name='downsample', dtype=self.dtype)(x) + r
    return concat(x) + r


class ChannelGate(nn.Module):
  """CBAM channel attention: shared MLP over global avg- and max-pooled features."""
  reduction: int = 16

  @nn.compact
  def __call__(self, x):  # [B, H, W, C]
    c = x.shape[-1]
    fc1 = nn.Dense(c // self.reduction, name='mlp_1')
    fc2 = nn.Dense(c, name='mlp_3')
    mlp = lambda v: fc2(nn.relu(fc1(v)))
    att = mlp(jnp.mean(x, axis=(1, 2))) + mlp(jnp.max(x, axis=(1, 2)))  # [B, C]
    return x * nn.sigmoid(att)[:, None, None, :]


class SpatialGate(nn.Module):
  """CBAM spatial attention: 7x7 conv over [channel max, channel mean]."""

  @nn.compact
  def __call__(self, x):  # [B, H, W, C]
    pooled = jnp.stack([jnp.max(x, -1), jnp.mean(x, -1)], axis=-1)  # [B, H, W, 2]
    s = conv(1, 7, name='spatial')(pooled)
    return x * nn.sigmoid(s)


class CBAM(nn.Module):
  """Convolutional block attention module (channel gate, then spatial gate)."""

  @nn.compact
  def __call__(self, x):
    return SpatialGate(name='SpatialGate')(ChannelGate(name='ChannelGate')(x))


class FeatureFusionBlock(nn.Module):
  """STCN value fuser: concat with key features, ResBlock, CBAM residual, ResBlock."""
  out_dim: int

  @nn.compact
  def __call__(self, x, f16):  # [B, h, w, Cx], [B|1, h, w, Cf] -> [B, h, w, out_dim]
    x = ResBlock(self.out_dim, name='block1')((x, f16))   # concat, f16 convolved once
    r = CBAM(name='attention')(x)
    return ResBlock(self.out_dim, name='block2')(x + r)


class UpsampleBlock(nn.Module):
  """Decoder stage: 3x3 skip projection + 2x bilinear upsampled input, then a ResBlock."""
  up_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, skip, up):  # skip [B|1, 2h, 2w, Cs], up [B, h, w, Cu]
    x = conv(self.up_dim, 3, name='skip_conv')(skip) + upsample(up, 2)
    return ResBlock(self.out_dim, name='out_conv')(x)
