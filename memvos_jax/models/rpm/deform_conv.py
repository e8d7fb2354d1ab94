"""Deformable convolution v1 (Dai et al., ICCV 2017) as a gather + matmul.

``deform_conv`` samples, for every output location and kernel tap, the input
at the regular grid position plus a learned offset (bilinear, zero outside
the image, as torchvision's ``deform_conv2d``) and contracts the samples with
the kernel: four gathers (one per bilinear corner, fused with their weights)
and one matmul, differentiable w.r.t. input, kernel and offsets, no Python
loop over positions. Offsets follow the torchvision/mmcv layout: channel ``2k`` is
the row (dy) and ``2k+1`` the column (dx) displacement of tap ``k = a*kw + b``.

``DeformConv`` is the layer (its own offset conv, zero-initialised, as in the
paper); ``deform_sample`` is the 1x1 variant whose offsets come from another
tensor with an identity channel map (RPM-Net layer 109).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def _corners(h, w, py, px, dtype):
  """The 4 bilinear corners of positions ``py``/``px`` [...]: (flat index, weight)
  pairs, weight 0 for a corner outside the [h, w] image (zero padding)."""
  y0, x0 = jnp.floor(py), jnp.floor(px)
  ly, lx = py - y0, px - x0
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  out = []
  for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
    yy, xx = y0 + dy, x0 + dx
    weight = (ly if dy else 1 - ly) * (lx if dx else 1 - lx)
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    out.append((jnp.clip(yy, 0, h - 1) * w + jnp.clip(xx, 0, w - 1),
                jnp.where(inside, weight, 0.0).astype(dtype)))
  return out


def _take(flat, index):  # [B, M, C], [B, ...] int -> [B, ..., C]
  return jax.vmap(lambda f, i: f[i])(flat, index)


def bilinear_sample(x, py, px):
  """Bilinear samples of ``x`` [B, H, W, C] at rows ``py`` / cols ``px`` [B, N].

  Pixel centres are integer positions; a corner outside the image
  contributes zero (zero padding). Returns [B, N, C].
  """
  b, h, w, c = x.shape
  flat = x.reshape(b, h * w, c)
  out = 0.0
  for index, weight in _corners(h, w, py, px, x.dtype):   # 4 fused gathers
    out = out + weight[..., None] * _take(flat, index)
  return out


def output_size(size, kernel, stride=1, padding=0, dilation=1):
  return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def deform_conv(x, offsets, kernel, bias=None, stride=1, padding=None, dilation=1):
  """Deformable convolution.

  Two exact evaluation orders, chosen by shape: with fewer output than input
  channels the kernel is applied first (each tap's [H, W, Cout] map, then
  bilinear sampling of Cout values per tap: sampling is linear), otherwise
  the input is sampled into an im2col matrix [Ho, Wo, kh*kw*Cin] that one
  matmul reduces.

  Args:
    x: [B, H, W, Cin] input.
    offsets: [B, Ho, Wo, 2*kh*kw] (dy, dx) per tap, in input pixels.
    kernel: [kh, kw, Cin, Cout] (flax HWIO).
    bias: [Cout] or None.
    stride, dilation: ints. padding: int, default ``dilation*(k-1)//2`` ("same").
  Returns:
    [B, Ho, Wo, Cout].
  """
  kh, kw, cin, cout = kernel.shape
  b, h, w, _ = x.shape
  k = kh * kw
  ph = dilation * (kh - 1) // 2 if padding is None else padding
  pw = dilation * (kw - 1) // 2 if padding is None else padding
  ho, wo = output_size(h, kh, stride, ph, dilation), output_size(w, kw, stride, pw, dilation)
  if offsets.shape != (b, ho, wo, 2 * k):
    raise ValueError(f'offsets must be {(b, ho, wo, 2 * k)}, got {offsets.shape}')
  off = offsets.reshape(b, ho, wo, kh, kw, 2)
  off = off.astype(jnp.promote_types(off.dtype, jnp.float32))   # positions need >= f32
  taps_y, taps_x = jnp.arange(kh) * dilation, jnp.arange(kw) * dilation
  gy = (jnp.arange(ho) * stride - ph)[:, None, None, None] + taps_y[None, None, :, None]
  gx = (jnp.arange(wo) * stride - pw)[None, :, None, None] + taps_x[None, None, None, :]
  py = (gy + off[..., 0]).reshape(b, ho * wo, k)               # [B, Ho*Wo, k]
  px = (gx + off[..., 1]).reshape(b, ho * wo, k)
  kernel = kernel.astype(x.dtype)
  if cout < cin:   # kernel first: y[p, tap] = x[p] @ W[tap]
    y = jnp.einsum('bhwc,kcd->bhwkd', x, kernel.reshape(k, cin, cout)).reshape(b, h * w * k, cout)
    tap = jnp.arange(k)
    out = 0.0
    for index, weight in _corners(h, w, py, px, x.dtype):
      out = out + jnp.einsum('bnk,bnkd->bnd', weight, _take(y, index * k + tap))
    out = out.reshape(b, ho, wo, cout)
  else:
    cols = bilinear_sample(x, py.reshape(b, -1), px.reshape(b, -1))  # [B, Ho*Wo*k, Cin]
    out = jnp.dot(cols.reshape(b, ho, wo, k * cin), kernel.reshape(k * cin, cout))
  return out if bias is None else out + bias


def deform_sample(x, offsets):
  """1x1 deformable conv with identity weights: ``x`` [B, H, W, C] sampled at
  each location plus ``offsets`` [B, H, W, 2] (dy, dx) -> [B, H, W, C]."""
  b, h, w, c = x.shape
  offsets = offsets.astype(jnp.promote_types(offsets.dtype, jnp.float32))
  py = jnp.arange(h, dtype=offsets.dtype)[:, None] + offsets[..., 0]
  px = jnp.arange(w, dtype=offsets.dtype)[None, :] + offsets[..., 1]
  return bilinear_sample(x, py.reshape(b, -1), px.reshape(b, -1)).reshape(b, h, w, c)


class DeformConv(nn.Module):
  """Deformable conv layer: a plain conv predicts the 2*k*k offsets from the input.

  The offset conv has the same kernel size and dilation and starts at zero,
  so the layer starts as the regular convolution. Offsets are sown under
  ``intermediates/offsets`` (for visualisation and tests).
  """
  features: int
  kernel_size: int = 3
  dilation: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] -> [B, H, W, features]
    k, d = self.kernel_size, self.dilation
    pad = d * (k - 1) // 2
    offsets = nn.Conv(2 * k * k, (k, k), kernel_dilation=(d, d), padding=((pad, pad), (pad, pad)),
                      kernel_init=nn.initializers.zeros, name='offset')(x)   # [B, H, W, 2k^2]
    self.sow('intermediates', 'offsets', offsets)
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return deform_conv(x, offsets, kernel, bias, padding=pad, dilation=d)
