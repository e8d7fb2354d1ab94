"""Shared layers (memvos_jax.nn.layers) against their straightforward forms."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.nn.layers import avg_pool, max_pool


def _reduce_window(x):
  return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))


@pytest.mark.parametrize('shape', [(2, 9, 12, 3), (1, 8, 7, 2), (1, 1, 1, 1)])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_max_pool_equals_the_reduce_window(shape, dtype):
  x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), dtype)
  got, want = max_pool(x, 3, 2), _reduce_window(x)
  assert got.dtype == want.dtype and got.shape == want.shape
  np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


def test_max_pool_gradient_goes_to_one_maximum_per_window():
  # Ties (ReLU zeros, equal values) get the reduce-window's gradient: one element a window.
  x = jnp.asarray(np.random.default_rng(1).integers(0, 3, (1, 9, 10, 2)), jnp.float32)
  g = jnp.asarray(np.random.default_rng(2).standard_normal((1, 5, 5, 2)), jnp.float32)
  loss = lambda f: lambda x: jnp.sum(f(x) * g)
  np.testing.assert_array_equal(jax.grad(loss(lambda x: max_pool(x, 3, 2)))(x),
                                jax.grad(loss(_reduce_window))(x))


@pytest.mark.parametrize('k', [3, 7])
def test_same_size_window_pools_equal_the_reduce_windows(k):
  """AFB-URR's 7x7 local average (zeros counted) and max, stride 1."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((2, 11, 9, 3)), jnp.float32)
  pad = ((k // 2, k // 2),) * 2
  np.testing.assert_allclose(avg_pool(x, k),
                             nn.avg_pool(x, (k, k), (1, 1), pad, count_include_pad=True),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(max_pool(x, k, 1), nn.max_pool(x, (k, k), (1, 1), pad))
  ties = jnp.asarray(rng.integers(0, 3, (1, 8, 9, 2)), jnp.float32)
  g = jnp.asarray(rng.standard_normal((1, 8, 9, 2)), jnp.float32)
  np.testing.assert_array_equal(
      jax.grad(lambda x: jnp.sum(max_pool(x, k, 1) * g))(ties),
      jax.grad(lambda x: jnp.sum(nn.max_pool(x, (k, k), (1, 1), pad) * g))(ties))
