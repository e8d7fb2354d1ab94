"""PIL's ``Image.resize`` (bicubic, 8-bit RGB) bit-exactly in JAX, for frames resized inside a scan.

The official SAM 2 loader resizes every frame with PIL (``.resize((S, S))``,
default filter bicubic). PIL resamples in two passes (horizontal, then
vertical) with fixed-point coefficients (22 fractional bits), rounding and
clipping to uint8 after each pass; the coefficients here are computed the
same way (``precompute_coeffs`` / ``normalize_coeffs_8bpc`` of
``libImaging/Resample.c``), so the result equals PIL's to the bit whenever the height grows or stays
(video frames to 1024x1024: 480p, 720p). Pillow 13 runs the vertical pass
first for some shrinking heights; pixels may then differ by one level.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

PRECISION_BITS = 32 - 8 - 2


def _bicubic(x: float, a: float = -0.5) -> float:
  x = abs(x)
  if x < 1.0:
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
  if x < 2.0:
    return (((x - 5) * x + 8) * x - 4) * a
  return 0.0


@functools.lru_cache(maxsize=16)
def coefficients(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """(source index [n_out, k] int32, fixed-point weight [n_out, k] int32) of one axis."""
  scale = n_in / n_out
  filterscale = max(scale, 1.0)
  support = 2.0 * filterscale
  ksize = int(math.ceil(support)) * 2 + 1
  index = np.zeros((n_out, ksize), np.int32)
  weight = np.zeros((n_out, ksize), np.int32)
  ss = 1.0 / filterscale
  for xx in range(n_out):
    center = (xx + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)
    xmax = min(int(center + support + 0.5), n_in) - xmin
    w = [_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
    total = 0.0
    for v in w:
      total += v
    for x, v in enumerate(w):
      v = v / total if total != 0.0 else v
      weight[xx, x] = int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(
          0.5 + v * (1 << PRECISION_BITS))
    index[xx, :xmax] = xmin + np.arange(xmax)
    index[xx, xmax:] = xmin
  return index, weight


def _clip8(acc):
  return jnp.clip(acc >> PRECISION_BITS, 0, 255).astype(jnp.uint8)


def _pass(x, n_out: int, axis: int):
  """One resampling pass of uint8 x along ``axis`` (0 rows, 1 columns)."""
  index, weight = coefficients(x.shape[axis], n_out)
  acc = jnp.full(x.shape[:axis] + (n_out,) + x.shape[axis + 1:], 1 << (PRECISION_BITS - 1),
                 jnp.int32)
  for j in range(index.shape[1]):
    taps = jnp.take(x, jnp.asarray(index[:, j]), axis=axis).astype(jnp.int32)
    w = jnp.asarray(weight[:, j])
    acc = acc + taps * (w[:, None, None] if axis == 0 else w[None, :, None])
  return _clip8(acc)


def resize_bicubic(image, size: tuple[int, int]):
  """[H, W, 3] uint8 -> [size[0], size[1], 3] uint8, equal to PIL ``.resize((w, h))``."""
  h, w = size
  x = image
  if x.shape[1] != w:
    x = _pass(x, w, 1)
  if x.shape[0] != h:
    x = _pass(x, h, 0)
  return x
