"""Deformable convolution: numpy nested-loop reference, plain conv, gradients, layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.models.rpm import deform_conv as dc


def _bilinear_ref(img, y, x):
  """torchvision deform_conv2d's bilinear: [H, W, C] at (y, x), zero outside."""
  h, w, c = img.shape
  if y <= -1 or y >= h or x <= -1 or x >= w:
    return np.zeros(c)
  y0, x0 = int(np.floor(y)), int(np.floor(x))
  out = np.zeros(c)
  for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
    for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
      if 0 <= yy < h and 0 <= xx < w:
        out += wy * wx * img[yy, xx]
  return out


def _deform_conv_ref(x, offsets, kernel, bias, stride, pad, dil):
  b, h, w, _ = x.shape
  kh, kw, _, cout = kernel.shape
  ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
  wo = (w + 2 * pad - dil * (kw - 1) - 1) // stride + 1
  out = np.zeros((b, ho, wo, cout))
  for n in range(b):
    for i in range(ho):
      for j in range(wo):
        acc = bias.astype(np.float64).copy()
        for a in range(kh):
          for c in range(kw):
            k = a * kw + c
            y = i * stride - pad + a * dil + offsets[n, i, j, 2 * k]
            xx = j * stride - pad + c * dil + offsets[n, i, j, 2 * k + 1]
            acc += _bilinear_ref(x[n], y, xx) @ kernel[a, c]
        out[n, i, j] = acc
  return out


# cin < cout samples the input (im2col); cin > cout applies the kernel first.
@pytest.mark.parametrize('k,stride,dil,scale,cin,cout', [
    (3, 1, 1, 1.5, 3, 4), (3, 1, 1, 1.5, 5, 2), (3, 1, 2, 3.0, 3, 4), (1, 1, 1, 2.0, 4, 3),
    (5, 1, 1, 1.0, 3, 4), (3, 2, 1, 1.5, 3, 4), (3, 2, 1, 1.5, 6, 2)])
def test_matches_nested_loop_reference(k, stride, dil, scale, cin, cout):
  rng = np.random.default_rng(k * 10 + dil + stride + cin)
  b, h, w = 2, 6, 7
  pad = dil * (k - 1) // 2
  ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
  wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
  x = rng.normal(size=(b, h, w, cin)).astype(np.float32)
  offsets = (rng.normal(size=(b, ho, wo, 2 * k * k)) * scale).astype(np.float32)
  kernel = rng.normal(size=(k, k, cin, cout)).astype(np.float32)
  bias = rng.normal(size=(cout,)).astype(np.float32)
  got = jax.jit(dc.deform_conv, static_argnames=('stride', 'padding', 'dilation'))(
      x, offsets, kernel, bias, stride=stride, padding=pad, dilation=dil)
  want = _deform_conv_ref(x, offsets, kernel, bias, stride, pad, dil)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('k,dil,cout', [(3, 1, 6), (3, 1, 2), (3, 3, 6), (5, 1, 6), (1, 1, 6)])
def test_zero_offsets_equal_plain_conv(k, dil, cout):
  rng = np.random.default_rng(k + dil)
  x = rng.normal(size=(2, 9, 11, 5)).astype(np.float32)
  kernel = rng.normal(size=(k, k, 5, cout)).astype(np.float32)
  pad = dil * (k - 1) // 2
  got = dc.deform_conv(x, jnp.zeros((2, 9, 11, 2 * k * k)), kernel, dilation=dil)
  want = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                      rhs_dilation=(dil, dil),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      precision=jax.lax.Precision.HIGHEST)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)


def test_integer_offsets_shift_the_input():
  x = jnp.arange(5 * 6, dtype=jnp.float32).reshape(1, 5, 6, 1)
  off = jnp.zeros((1, 5, 6, 2)).at[..., 0].set(1.0).at[..., 1].set(-2.0)
  out = dc.deform_sample(x, off)[0, ..., 0]
  want = np.zeros((5, 6))
  want[:4, 2:] = np.asarray(x[0, 1:, :4, 0])
  np.testing.assert_allclose(np.asarray(out), want)


@pytest.mark.parametrize('cin,cout', [(2, 3), (3, 2)])
def test_gradients_match_finite_differences(cin, cout):
  rng = np.random.default_rng(7)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.normal(size=(1, 5, 6, cin)))
    kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)))
    # Offsets away from integer sample positions (bilinear has kinks there).
    off = rng.uniform(0.2, 0.8, size=(1, 5, 6, 18)) * rng.choice([-1, 1], size=(1, 5, 6, 18))
    off = jnp.asarray(off + rng.integers(-1, 2, size=off.shape))
    w = jnp.asarray(rng.normal(size=(1, 5, 6, cout)))
    f = lambda x, o, k: jnp.sum(w * dc.deform_conv(x, o, k))
    grads = jax.grad(f, argnums=(0, 1, 2))(x, off, kernel)
    eps = 1e-6
    for arg, g in enumerate(grads):
      args = [x, off, kernel]
      flat = np.asarray(args[arg]).ravel()
      picks = rng.choice(flat.size, size=min(12, flat.size), replace=False)
      for p in picks:
        d = np.zeros_like(flat)
        d[p] = eps
        plus = list(args)
        minus = list(args)
        plus[arg] = args[arg] + d.reshape(args[arg].shape)
        minus[arg] = args[arg] - d.reshape(args[arg].shape)
        numeric = (f(*plus) - f(*minus)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(g).ravel()[p], numeric, rtol=1e-5, atol=1e-7)


def test_layer_starts_as_plain_conv_and_offsets_train():
  layer = dc.DeformConv(4, 3)
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 3))
  variables = layer.init(jax.random.key(1), x)
  params = variables['params']
  assert params['offset']['kernel'].shape == (3, 3, 3, 18)
  plain = jax.lax.conv_general_dilated(x, params['kernel'], (1, 1), ((1, 1), (1, 1)),
                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                       precision=jax.lax.Precision.HIGHEST)
  np.testing.assert_allclose(np.asarray(layer.apply(variables, x)), np.asarray(plain), atol=1e-5)
  g = jax.grad(lambda p: jnp.sum(layer.apply({'params': p}, x) ** 2))(params)
  assert float(jnp.abs(g['offset']['kernel']).sum()) > 0
