"""The Python API: whole-clip segment and the streaming session agree."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax import api
from memvos_jax.errors import InputError
from memvos_jax.models import STCN

H, W = 40, 64


@functools.lru_cache(maxsize=None)
def _segmenter(chunk=1):
  model = STCN(key_backbone='resnet18', key_dim=16, value_dim=32)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 64, 64)))
  return api.Segmenter(model, variables, mem_every=2, memory_capacity=6, chunk=chunk)


def _video(t=9):
  rng = np.random.default_rng(1)
  frames = rng.integers(0, 255, (t, H, W, 3), dtype=np.uint8)
  m0 = np.zeros((H, W), np.uint8)
  m0[5:15, 5:25] = 4
  m5 = np.zeros((H, W), np.uint8)
  m5[20:35, 30:60] = 9
  return frames, {0: m0, 5: m5}


def test_stream_equals_segment_with_object_added_at_frame_5():
  frames, masks = _video()
  whole = _segmenter().segment(frames, masks)
  session = _segmenter().session((H, W), max_objects=2)
  streamed = np.stack([session.step(f, masks.get(i)) for i, f in enumerate(frames)])
  np.testing.assert_array_equal(whole, streamed)
  assert session.objects == [4, 9]
  assert not np.any(whole[:5] == 9) and np.array_equal(whole[5] == 9, masks[5] == 9)


def test_chunked_scan_equals_single_frame_steps():
  frames, masks = _video()
  np.testing.assert_array_equal(_segmenter(1).segment(frames, masks),
                                _segmenter(4).segment(frames, masks))


def test_session_rejects_bad_input():
  session = _segmenter().session((H, W), max_objects=1)
  frames, _ = _video(1)
  with pytest.raises(InputError, match='shape'):
    session.step(frames[0][:10])
  two = np.zeros((H, W), np.uint8)
  two[:5, :5], two[-5:, -5:] = 1, 2
  with pytest.raises(InputError, match='max_objects'):
    session.step(frames[0], two)
