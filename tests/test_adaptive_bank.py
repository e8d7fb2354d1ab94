"""The adaptive feature bank against a numpy transcription of the official FeatureBank.

``OfficialBank`` below follows ``model/FeatureBank.py`` of xmlyqing00/AFB-URR
line by line (lists of [d, n] arrays, boolean compaction, the Python
``while True`` remove loop with ``int()`` thresholds, the float class budget
of obj_n == 2). The jitted static-slot bank must hold the same entries in the
same order after every update, on random data built so that merges (several
new keys into one entry) and multi-round LFU removals happen many times.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_frames, tiny_stcn
from memvos_jax.memory import adaptive
from memvos_jax.memory import bank as frame_bank

pytestmark = pytest.mark.fast_compile   # ours against a numpy transcription


def _normalize(x):  # torch F.normalize(x, dim=0) on [d, n]
  return x / np.maximum(np.linalg.norm(x, axis=0), 1e-12)


class OfficialBank:
  """numpy float32 transcription of the official FeatureBank (update/remove/matcher)."""

  def __init__(self, obj_n, budget, update_rate=0.1, thres_close=0.95):
    self.obj_n, self.update_rate, self.thres_close = obj_n, update_rate, thres_close
    self.class_budget = budget // obj_n
    if obj_n == 2:
      self.class_budget = 0.8 * self.class_budget
    self.log = []
    self.rounds = []   # remove-loop iterations per remove call

  def init_bank(self, keys, values, frame_idx=0):
    self.keys, self.values = [k.copy() for k in keys], [v.copy() for v in values]
    self.info = []
    for k in keys:
      info = np.zeros((k.shape[1], 2), np.float32)
      info[:, 0] = frame_idx
      self.info.append(info)

  def match(self, q, thres_valid=1e-3):
    out = []
    for i in range(self.obj_n):
      d_key = self.keys[i].shape[0]
      p = (self.keys[i].T @ q) / np.float32(np.sqrt(d_key))           # bank_n, HW
      p = np.exp(p - p.max(axis=0, keepdims=True))
      p = (p / p.sum(axis=0, keepdims=True)).astype(np.float32)
      out.append(self.values[i] @ p)
      cnt = (p > thres_valid).sum(axis=1).astype(np.float32)
      self.info[i][:, 1] += np.log(cnt + 1).astype(np.float32)
    return out

  def update(self, prev_key, prev_value, frame_idx):
    row = []
    for c in range(self.obj_n):
      d_key, bank_n = self.keys[c].shape
      d_val = self.values[c].shape[0]
      normed_keys = _normalize(self.keys[c])
      normed_prev_key = _normalize(prev_key[c])
      corr = normed_keys.T @ normed_prev_key                          # bank_n, prev_n
      related = corr.argmax(axis=0)
      related_corr = corr[related, np.arange(corr.shape[1])]
      sel = np.nonzero(related_corr > self.thres_close)[0]
      idx = related[sel]
      uniq = np.unique(idx)
      for arr, prev, d in ((self.keys, prev_key, d_key), (self.values, prev_value, d_val)):
        normed = _normalize(arr[c])
        normed_prev = _normalize(prev[c])
        mag = np.linalg.norm(arr[c], axis=0)
        upd = np.zeros((d, bank_n), np.float32)
        cnt = np.zeros(bank_n, np.float32)
        np.add.at(upd.T, idx, normed_prev[:, sel].T)
        np.add.at(cnt, idx, 1.0)
        upd = upd / np.maximum(cnt, 1.0)
        arr[c][:, uniq] = mag[uniq] * ((1 - self.update_rate) * normed[:, uniq]
                                       + self.update_rate * upd[:, uniq])
      sel = np.nonzero(related_corr <= self.thres_close)[0]
      removed = calls = 0
      if self.class_budget < bank_n + sel.shape[0]:
        removed, calls = self.remove(c, sel.shape[0], frame_idx), 1
      self.keys[c] = np.concatenate([self.keys[c], prev_key[c][:, sel]], axis=1)
      self.values[c] = np.concatenate([self.values[c], prev_value[c][:, sel]], axis=1)
      new_info = np.zeros((sel.shape[0], 2), np.float32)
      new_info[:, 0] = frame_idx
      self.info[c] = np.concatenate([self.info[c], new_info], axis=0)
      self.info[c][:, 1] = np.clip(self.info[c][:, 1], 0, 1e5)
      row.append((len(related_corr) - sel.shape[0], len(uniq), removed, calls))
    self.log.append(row)

  def remove(self, class_idx, request_n, frame_idx):
    old = self.keys[class_idx].shape[1]
    lfu = frame_idx - self.info[class_idx][:, 0]
    lfu = self.info[class_idx][:, 1] / lfu
    thres_dynamic = int(lfu.min()) + 1
    self.rounds.append(0)
    while True:
      self.rounds[-1] += 1
      selected = lfu > thres_dynamic
      self.keys[class_idx] = self.keys[class_idx][:, selected]
      self.values[class_idx] = self.values[class_idx][:, selected]
      self.info[class_idx] = self.info[class_idx][selected]
      lfu = lfu[selected]
      balance = (self.class_budget - self.keys[class_idx].shape[1]) - request_n
      if balance < 0:
        thres_dynamic = int(lfu.min()) + 1
      else:
        break
    return old - self.keys[class_idx].shape[1]


CK, CV = 8, 6


def _frame_features(rng, obj_n, n, bank=None, dup=0.5):
  """New keys/values [O, n, C]: a fraction are near-copies of bank entries (merges)."""
  keys = rng.normal(size=(obj_n, n, CK)).astype(np.float32) + 1.0
  values = rng.normal(size=(obj_n, n, CV)).astype(np.float32)
  if bank is not None:
    for c in range(obj_n):
      m = bank.keys[c].shape[1]
      pick = rng.random(n) < dup
      src = rng.integers(0, m, n)
      src[: n // 4] = src[0]    # several new keys into one entry
      noise = 0.02 * rng.normal(size=(n, CK)).astype(np.float32)
      keys[c, pick] = bank.keys[c][:, src[pick]].T * 1.3 + noise[pick]
  return keys, values


def _assert_same(ref, got, t):
  o = ref.obj_n
  count = np.asarray(got.count)
  for c in range(o):
    n = ref.keys[c].shape[1]
    assert count[c] == n, (t, c, count[c], n)
    np.testing.assert_array_equal(np.asarray(got.frame[c, :n]), ref.info[c][:, 0].astype(np.int32),
                                  err_msg=f'frame t={t} class {c}')
    np.testing.assert_allclose(np.asarray(got.usage[c, :n]), ref.info[c][:, 1], rtol=1e-6,
                               atol=1e-6, err_msg=f'usage t={t} class {c}')
    np.testing.assert_allclose(np.asarray(got.keys[c, :n]), ref.keys[c].T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.values[c, :n]), ref.values[c].T, rtol=1e-5,
                               atol=1e-5)
    # Free slots are empty: nothing lost, nothing duplicated beyond the count.
    assert np.all(np.asarray(got.frame[c, n:]) == -1)
    assert np.all(np.asarray(got.usage[c, n:]) == 0)


@functools.lru_cache(maxsize=None)
def _update_fn(limit, rate, thres):
  return jax.jit(functools.partial(adaptive.update, limit=limit, update_rate=rate,
                                   thres_close=thres))


def _simulate(obj_n, budget, n, steps, seed, rate=0.1, thres=0.95):
  rng = np.random.default_rng(seed)
  ref = OfficialBank(obj_n, budget, rate, thres)
  s = adaptive.num_slots(budget, obj_n, n, steps + 1)
  limit = adaptive.class_limit(budget, obj_n, s)
  update = _update_fn(limit, rate, thres)
  k0, v0 = _frame_features(rng, obj_n, n)
  ref.init_bank([k.T for k in k0], [v.T for v in v0], 0)
  bank = adaptive.reset(adaptive.init(obj_n, s, CK, CV), k0, v0, 0)
  calls = np.zeros(obj_n, int)
  for t in range(1, steps + 1):
    # Usage: random increments of log(1 + hits), identical for both banks, spread
    # so that LFU = usage / age spans several integers (multi-round removals).
    inc = np.zeros((obj_n, s), np.float32)
    for c in range(obj_n):
      m = ref.keys[c].shape[1]
      hits = rng.integers(0, 60, m) * (rng.random(m) < 0.7)
      inc[c, :m] = np.log(hits + 1).astype(np.float32)
      ref.info[c][:, 1] += inc[c, :m]
    bank = bank.replace(usage=bank.usage + inc)
    k, v = _frame_features(rng, obj_n, n, ref)
    ref.update([x.T for x in k], [x.T for x in v], t)
    bank = update(bank, k, v, t)
    _assert_same(ref, bank, t)
    for c, (merged, targets, removed, call) in enumerate(ref.log[-1]):
      assert int(bank.merged[c]) == merged and int(bank.merge_targets[c]) == targets
      assert int(bank.removed[c]) == removed
      calls[c] += call
    np.testing.assert_array_equal(np.asarray(bank.remove_calls), calls)
    assert np.all(np.asarray(bank.count) <= limit)
  return ref, bank


def test_three_classes_many_merges_and_removals():
  ref, bank = _simulate(obj_n=3, budget=3 * 70, n=24, steps=14, seed=0)
  log = np.array(ref.log)                                  # [steps, O, 4]
  assert log[:, :, 0].sum() > 100                          # merges happened
  assert np.any(log[:, :, 0] > log[:, :, 1])               # several keys into one entry
  assert log[:, :, 3].sum() >= 10                          # LFU removal fired often
  assert max(ref.rounds) >= 2                              # the threshold loop repeated
  assert np.all(np.asarray(bank.count) <= 70)


def test_two_classes_float_budget():
  # obj_n == 2: class_budget = 0.8 * (75 // 2) = 29.6 (float): at most 29 entries.
  assert adaptive.class_budget(75, 2) == pytest.approx(29.6)
  assert adaptive.class_limit(75, 2, 1000) == 29
  ref, bank = _simulate(obj_n=2, budget=75, n=10, steps=16, seed=1)
  assert np.array(ref.log)[:, :, 3].sum() >= 8
  assert max(ref.rounds) >= 2
  assert int(np.max(np.asarray(bank.count))) <= 29


def test_remove_loop_rounds_match_int_thresholds():
  # A hand-made case: LFU = 0.5, 1.5, 2.2, 2.9, 3.5, 7 (ages 1). int(min)+1 = 1 keeps
  # {1.5, 2.2, 2.9, 3.5, 7}; still too many -> int(1.5)+1 = 2 keeps {2.2, 2.9, 3.5, 7};
  # -> 3 keeps {3.5, 7}: fits a request of 3 under a limit of 5.
  usage = jnp.array([0.5, 1.5, 2.2, 2.9, 3.5, 7.0, 0.0, 0.0], jnp.float32)
  frame = jnp.array([4, 4, 4, 4, 4, 4, -1, -1], jnp.int32)
  valid = jnp.arange(8) < 6
  keep = adaptive.lfu_remove_mask(usage, frame, valid, 5, 3, 5)
  np.testing.assert_array_equal(np.asarray(keep), [0, 0, 0, 0, 1, 1, 0, 0])
  keep = adaptive.lfu_remove_mask(usage, frame, valid, 5, 0, 5)   # first round always runs
  np.testing.assert_array_equal(np.asarray(keep), [0, 1, 1, 1, 1, 1, 0, 0])


def test_read_matches_official_matcher_and_counts_usage():
  rng = np.random.default_rng(3)
  obj_n, n, q = 3, 20, 30
  ref = OfficialBank(obj_n, 10_000)
  k0, v0 = _frame_features(rng, obj_n, n)
  k0 *= 0.5
  ref.init_bank([k.T for k in k0], [v.T for v in v0], 0)
  bank = adaptive.reset(adaptive.init(obj_n, 2 * n, CK, CV), k0, v0, 0)
  query = (rng.normal(size=(q, CK)) + 0.5).astype(np.float32)
  expected = ref.match(query.T)
  readout, bank = jax.jit(adaptive.read)(bank, jnp.asarray(query))
  for c in range(obj_n):
    np.testing.assert_allclose(np.asarray(readout[c]), expected[c].T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bank.usage[c, :n]), ref.info[c][:, 1], rtol=1e-6)
    assert np.all(np.asarray(bank.usage[c, n:]) == 0)
  assert float(jnp.sum(bank.usage)) > 0


def test_long_clip_far_past_budget_is_flat_and_exact():
  """200 updates into a budget of ~3 frames: shapes fixed, accounting exact each step."""
  obj_n, n, steps, budget = 2, 16, 200, 2 * 60   # class budget 0.8 * 60 = 48
  rng = np.random.default_rng(7)
  s = adaptive.num_slots(budget, obj_n, n, steps)
  limit = adaptive.class_limit(budget, obj_n, s)
  assert s == 48 and limit == 48
  ks = (rng.normal(size=(steps, obj_n, n, CK)) + 1.0).astype(np.float32)
  ks[:, :, : n // 2] = ks[0, :, : n // 2] + 0.01 * rng.normal(size=(steps, obj_n, n // 2, CK))
  vs = rng.normal(size=(steps, obj_n, n, CV)).astype(np.float32)
  qs = (rng.normal(size=(steps, n, CK)) + 1.0).astype(np.float32)
  traces = []

  @jax.jit
  def run(bank, xs):
    def body(b, x):
      traces.append(1)
      k, v, q, t = x
      _, b = adaptive.read(b, q)
      b = adaptive.update(b, k, v, t, limit=limit)
      return b, (b.count, b.remove_calls, jnp.sum(b.valid, axis=1))
    return jax.lax.scan(body, bank, xs)

  bank0 = adaptive.reset(adaptive.init(obj_n, s, CK, CV), ks[0], vs[0], 0)
  bank, (counts, calls, valid) = run(bank0, (ks[1:], vs[1:], qs[1:], jnp.arange(1, steps)))
  assert len(traces) == 1
  assert jax.tree.map(lambda a: a.shape, bank) == jax.tree.map(lambda a: a.shape, bank0)
  counts, calls, valid = map(np.asarray, (counts, calls, valid))
  assert np.all(counts <= limit) and np.all(counts == valid)
  assert calls[-1].min() > 20                         # removal fired again and again

  # The same run through the official transcription: identical entries at the end.
  ref = OfficialBank(obj_n, budget)
  ref.init_bank([k.T for k in ks[0]], [v.T for v in vs[0]], 0)
  for t in range(1, steps):
    ref.match(qs[t].T)
    ref.update([k.T for k in ks[t]], [v.T for v in vs[t]], t)
    np.testing.assert_array_equal(counts[t - 1], [k.shape[1] for k in ref.keys])
  for c in range(obj_n):
    m = ref.keys[c].shape[1]
    np.testing.assert_array_equal(np.asarray(bank.frame[c, :m]), ref.info[c][:, 0])
    # Every entry exactly once: birth frames + key fingerprints are the official multiset.
    np.testing.assert_allclose(np.asarray(bank.keys[c, :m]), ref.keys[c].T, rtol=1e-4, atol=1e-4)


def test_frame_bank_lfu_evicts_least_used_per_age():
  b = frame_bank.init(4, 2, 3, 2, 2)
  for f in range(4):
    b = adaptive.write_lfu(b, jnp.full((3, 2), f, jnp.float32), jnp.ones((2, 3, 2)),
                           jnp.array([True, True]), f, pin=(f == 0))
  assert np.asarray(b.frame).tolist() == [0, 1, 2, 3]
  # usage/age at t=10: slot0 pinned; slot1 9/9=1, slot2 2/8=0.25, slot3 4/7=0.57.
  b = b.replace(usage=jnp.array([0.0, 9.0, 2.0, 4.0]))
  assert int(adaptive.lfu_slot(b, 10)) == 2
  b = adaptive.write_lfu(b, jnp.zeros((3, 2)), jnp.zeros((2, 3, 2)), jnp.array([True, False]), 10)
  assert np.asarray(b.frame).tolist() == [0, 1, 10, 3]
  assert float(b.usage[2]) == 0.0 and np.asarray(b.valid[2]).tolist() == [True, False]
  # FIFO would have replaced the oldest unpinned slot instead.
  assert int(frame_bank.select_slot(b)) == 1


@pytest.mark.slow   # compiles the tiny STCN twice: ~40 s
def test_stcn_with_lfu_eviction_is_a_settings_switch():
  """STCN's frame bank with eviction='lfu': the least used unpinned frame goes, not the oldest."""
  from memvos_jax import registry
  from memvos_jax.inference import core
  from memvos_jax.models.stcn import inference as stcn_core
  h, w, k = 32, 48, 1
  model, variables = tiny_stcn((h, w), k)
  images = random_frames(4, (h, w))
  ann = np.zeros((4, h, w), np.uint8)
  ann[0, 8:20, 8:30] = 1
  kept = {}
  for eviction in ('fifo', 'lfu'):
    settings = stcn_core.InferenceSettings(mem_every=1, capacity=3, chunk=1, eviction=eviction)
    fn = core.make_chunk_fn(model, settings, stcn_core.frame_step)
    state = stcn_core.init_state(settings, k, (h, w), model.key_dim, model.value_dim)
    for t in range(4):
      if t == 3:   # frame 1 was read heavily, frame 2 hardly: usage per age decides
        usage = np.where(np.asarray(state.bank.frame) == 1, 1e6, 0.0).astype(np.float32)
        state = state.replace(bank=state.bank.replace(usage=jnp.asarray(usage)))
      xs = core.FrameInput(
          image=images[t:t + 1], annotation=ann[t:t + 1], given=np.array([[t == 0]]),
          index=np.array([t], np.int32), is_last=np.array([False]), valid=np.ones(1, bool))
      state, _ = fn(variables, state, xs)
    kept[eviction] = sorted(np.asarray(state.bank.frame).tolist())
  assert kept == {'fifo': [0, 2, 3], 'lfu': [0, 1, 3]}
  with pytest.raises(ValueError, match='eviction'):
    stcn_core.InferenceSettings(eviction='lru')
  assert registry.config('stcn').inference.eviction == 'fifo'      # default unchanged


@pytest.mark.parametrize('offset, merged', [(0.0, 0), (-1e-6, 1)])
def test_cosine_exactly_at_threshold_is_appended_not_merged(offset, merged):
  """Official ``FeatureBank.update`` merges only where corr > thres_close (strictly).

  Keys (1, 0) and (0.6, 0.8) have unit norms and a cosine of exactly
  float32(0.6) here, so with thres_close = 0.6 the new key sits on the
  threshold: strictly greater means append (``>=`` would merge it); a
  threshold a hair lower merges it.
  """
  bank = adaptive.init(1, 4, 2, 3)
  bank = adaptive.reset(bank, jnp.array([[[1.0, 0.0]]]), jnp.ones((1, 1, 3)), 0)
  new_k = jnp.array([[[0.6, 0.8]]], jnp.float32)
  assert float(jnp.sum(new_k * jnp.array([1.0, 0.0]))) == np.float32(0.6)
  out = adaptive.update(bank, new_k, jnp.ones((1, 1, 3)), 1, limit=4,
                        thres_close=float(np.float32(0.6)) + offset)
  assert int(out.merged[0]) == merged
  assert int(out.count[0]) == 2 - merged
