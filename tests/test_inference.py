"""Scan inference: one trace per clip shape, bounded memory, official schedule."""

import functools

import numpy as np
import pytest

from memvos_jax.inference import core
from memvos_jax.models.stcn import inference as stcn_core

from helpers import random_clip, run_chunks, tiny_stcn

pytestmark = pytest.mark.fast_compile   # ours against ours

H, W, K = 48, 80, 2


@functools.lru_cache(maxsize=None)
def _model():
  return tiny_stcn((H, W), K)


def _clip(t, given_at=((0, (True, True)),), seed=0):
  return random_clip(t, (H, W), K, given_at, seed)


def _run(t, settings, given_at=((0, (True, True)),), on_trace=None):
  model, variables = _model()
  fn = core.make_chunk_fn(model, settings, stcn_core.frame_step, on_trace=on_trace)
  state = stcn_core.init_state(settings, K, (H, W), model.key_dim, model.value_dim)
  return run_chunks(fn, variables, state, _clip(t, given_at), settings)


@pytest.mark.slow   # compiles the tiny STCN and a chunk-4 scan: ~70 s
def test_scan_body_traced_once_per_clip():
  calls = []
  settings = stcn_core.InferenceSettings(mem_every=2, capacity=4, chunk=4)
  _run(11, settings, on_trace=lambda: calls.append(1))   # 3 chunks, last padded
  assert len(calls) == 1


@pytest.mark.slow   # two scans compiled: ~22 s
def test_capacity_at_least_writes_equals_unbounded():
  t, every = 12, 3
  need = stcn_core.memory_writes(t, {0}, every)
  assert need == 4   # frames 0, 3, 6, 9 (never the last frame)
  a = _run(t, stcn_core.InferenceSettings(mem_every=every, capacity=need, chunk=4, return_probs=True))
  b = _run(t, stcn_core.InferenceSettings(mem_every=every, capacity=need + 5, chunk=4, return_probs=True))
  np.testing.assert_array_equal(a[1], b[1])
  np.testing.assert_allclose(a[2], b[2], atol=1e-6)
  assert sorted(np.asarray(a[0].bank.frame).tolist()) == [0, 3, 6, 9]


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_small_capacity_keeps_pinned_frame_and_recent():
  state, masks, _ = _run(14, stcn_core.InferenceSettings(mem_every=2, capacity=3, chunk=5))
  frames = sorted(np.asarray(state.bank.frame).tolist())
  assert frames == [0, 10, 12]                       # annotated frame pinned + 2 most recent
  assert bool(state.bank.pinned[np.asarray(state.bank.frame).tolist().index(0)])
  assert masks.shape == (14, H, W)


def test_object_appearing_later():
  """Object 2 is annotated on frame 3: absent before, given mask on frame 3, tracked after."""
  settings = stcn_core.InferenceSettings(mem_every=5, capacity=4, chunk=4, return_probs=True)
  state, masks, probs = _run(8, settings, given_at=((0, (True, False)), (3, (False, True))))
  _, annotation, _ = _clip(8, ((0, (True, False)), (3, (False, True))))
  assert np.all(probs[:3, 2] == 0) and not np.any(masks[:3] == 2)
  np.testing.assert_array_equal(masks[3] == 2, annotation[3] == 2)
  np.testing.assert_array_equal(masks[0], annotation[0])
  # Memory: frame 0 holds object 1 only; frame 3 (pinned) holds both.
  fr = np.asarray(state.bank.frame).tolist()
  valid = np.asarray(state.bank.valid)
  assert valid[fr.index(0)].tolist() == [True, False]
  assert valid[fr.index(3)].tolist() == [True, True]
  assert bool(state.bank.pinned[fr.index(3)])
  # Later frames can predict object 2.
  assert probs[4:, 2].max() > 0


def test_memory_writes_schedule():
  # annotated 0 and 5, mem_every 3, 12 frames: 0, 3, 5(ann), 8, (11 is last: skipped)
  assert stcn_core.memory_writes(12, {0, 5}, 3) == 4


def test_padding_is_centred():
  assert core.pad_amounts((480, 854)) == (0, 0, 5, 5)
  assert core.pad_amounts((270, 481)) == (1, 1, 7, 8)
