"""Memory bank: FIFO eviction with pinning, masked reads, capacity equivalence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax import memory

pytestmark = pytest.mark.fast_compile   # ours against ours


def _bank(c=3, k=2, n=4, ck=8, cv=5):
  return memory.init(c, k, n, ck, cv)


def _write(bank, t, pin=False, obj=(True, True), seed=0):
  rng = np.random.default_rng(seed + t)
  k, c, n, cv = bank.values.shape
  key = rng.normal(size=(n, bank.keys.shape[-1])).astype(np.float32)
  val = rng.normal(size=(k, n, cv)).astype(np.float32)
  return memory.write(bank, key, val, jnp.asarray(obj), t, pin=pin)


def test_fifo_keeps_pinned_and_evicts_oldest():
  bank = _bank(c=3)
  bank = _write(bank, 0, pin=True)
  for t in (5, 10, 15, 20):
    bank = _write(bank, t)
  assert sorted(np.asarray(bank.frame).tolist()) == [0, 15, 20]
  assert bool(bank.pinned[np.argmin(np.asarray(bank.frame))])


def test_write_without_objects_is_noop():
  bank = _write(_bank(), 3, obj=(False, False))
  assert not bool(jnp.any(bank.valid))


def test_empty_slots_never_contribute():
  """Garbage in unused slots must not change the read."""
  bank = _write(_bank(c=4), 0)
  q = jax.random.normal(jax.random.key(1), (6, 8))
  r1, _ = memory.read(bank, q, top_k=3)
  noisy = bank.replace(keys=bank.keys.at[1:].set(100.0), values=bank.values.at[:, 1:].set(1e3))
  r2, _ = memory.read(noisy, q, top_k=3)
  np.testing.assert_allclose(r1, r2, rtol=1e-6)


def test_topk_read_matches_dense_reference():
  bank = _write(_write(_bank(c=2), 0), 5)
  q = jax.random.normal(jax.random.key(2), (6, 8))
  out, slot_w = memory.read(bank, q, top_k=3)
  mk = np.asarray(bank.keys).reshape(-1, 8)
  aff = (2 * np.asarray(q) @ mk.T - (mk ** 2).sum(1)) / np.sqrt(8)
  ref = np.zeros_like(aff)
  for i, row in enumerate(aff):
    top = np.argsort(-row)[:3]
    e = np.exp(row[top])
    ref[i, top] = e / e.sum()
  vals = np.asarray(bank.values).reshape(2, -1, 5)
  np.testing.assert_allclose(out, np.einsum('qm,kmc->kqc', ref, vals), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(slot_w.sum()), 2 * 6, rtol=1e-5)


def test_objects_with_fewer_slots_read_only_their_own():
  """Object 1 entered later: its read ignores slot 0 (where it had no value)."""
  bank = _bank(c=2)
  bank = _write(bank, 0, obj=(True, False))
  bank = _write(bank, 5, obj=(True, True))
  q = jax.random.normal(jax.random.key(3), (6, 8))
  out, _ = memory.read(bank, q, top_k=2)
  only = memory.init(1, 2, 4, 8, 5)
  only = only.replace(keys=bank.keys[1:], values=bank.values[:, 1:], valid=bank.valid[1:],
                      frame=bank.frame[1:], pinned=bank.pinned[1:], usage=bank.usage[1:])
  ref, _ = memory.read(only, q, top_k=2)
  np.testing.assert_allclose(out[1], ref[1], rtol=1e-5, atol=1e-6)
  assert not np.allclose(out[0], ref[0])


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_blocked_topk_read_equals_one_topk_over_the_memory():
  """Blocks of slots (empty ones skipped, a partial last block) change nothing."""
  bank = _bank(c=11, k=2, n=4)
  # Slots 0-3 (a whole block) stay empty; object 1 enters later; one top-k
  # larger than a block's positions (8 > 2 slots x 4 positions).
  for i, t in enumerate((0, 5, 10, 15, 20, 25)):
    bank = _write(bank, t, obj=(True, i >= 2), seed=7)
  bank = bank.replace(keys=jnp.roll(bank.keys, 4, axis=0), values=jnp.roll(bank.values, 4, 1),
                      valid=jnp.roll(bank.valid, 4, axis=0), frame=jnp.roll(bank.frame, 4))
  q = jax.random.normal(jax.random.key(4), (6, 8))
  for top_k in (3, 8):
    for shared in (False, True):
      b = bank if not shared else bank.replace(valid=bank.valid.at[:, 1].set(bank.valid[:, 0]))
      want, want_w = memory.read(b, q, top_k=top_k, block_slots=b.capacity)   # one block
      for block_slots in (1, 2, 4):
        got, got_w = memory.read(b, q, top_k=top_k, block_slots=block_slots)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-6, atol=1e-6)
