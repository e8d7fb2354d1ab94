"""SAM 2 pieces without the shared fixtures: masked attention, RoPE, the per-object memory,
and the predictor workflow on a small random-init model (image size 256)."""

import flax.linen as nn
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from helpers import numpy_variables, random_frames
from memvos_jax.errors import InputError
from memvos_jax.models.sam2 import SAM2
from memvos_jax.models.sam2 import memory_bank as mb
from memvos_jax.models.sam2.common import DepthwiseConv, bilinear_aa_matrix, sdpa, sdpa_blocked
from memvos_jax.models.sam2.memory_attention import (MemoryAttention, apply_rope,
                                                     axial_rope_angles)
from memvos_jax.models.sam2.predictor import Sam2Predictor, Sam2Settings

pytestmark = pytest.mark.fast_compile   # ours against ours and the official formulas


def test_masked_attention_equals_dropping_tokens():
  rng = np.random.default_rng(0)
  q = rng.standard_normal((8, 2, 4)).astype(np.float32)
  k = rng.standard_normal((10, 2, 4)).astype(np.float32)
  v = rng.standard_normal((10, 2, 3)).astype(np.float32)
  keep = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0], bool)
  full = sdpa(q, k, v, jnp.asarray(keep), q_chunk=4)
  sub = sdpa(q, k[keep], v[keep])
  np.testing.assert_allclose(full, sub, rtol=1e-5, atol=1e-6)
  # Blocks of 3 keys (memory frames: each wholly present or absent) + a tail of 2 keys
  # masked one by one (object pointers); absent blocks are skipped. Two heads, and one.
  k, v = np.concatenate([k, k[:1]]), np.concatenate([v, v[:1]])
  for keep in ([1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1], [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0],
               [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]):
    keep = np.array(keep, bool)
    for h in (slice(None), slice(1)):
      blocked = sdpa_blocked(q[:, h], k[:, h], v[:, h], jnp.asarray(keep), 3)
      np.testing.assert_allclose(blocked, sdpa(q[:, h], k[keep][:, h], v[keep][:, h]),
                                 rtol=1e-5, atol=1e-6)


def test_depthwise_conv_equals_the_grouped_convolution():
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 9, 11, 6)), jnp.float32)
  grouped = nn.Conv(6, (7, 7), padding=((3, 3), (3, 3)), feature_group_count=6,
                    precision=jax.lax.Precision.HIGHEST)
  variables = grouped.init(jax.random.key(0), x)
  variables = jax.tree.map(lambda a: a + 0.1, variables)     # a non-zero bias too
  np.testing.assert_allclose(DepthwiseConv(7).apply(variables, x), grouped.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_first_self_attention_computed_once_equals_per_object():
  """Layer 0's self-attention, shared by the objects of a frame, changes nothing."""
  rng = np.random.default_rng(0)
  m = MemoryAttention(32, 2)
  curr, pos = (jnp.asarray(rng.standard_normal((4, 4, 32)), jnp.float32) for _ in range(2))
  mem, mpos = (jnp.asarray(rng.standard_normal((2 * 16 + 4, 8)), jnp.float32) for _ in range(2))
  keep = jnp.asarray(np.r_[np.ones(16), np.zeros(16), np.ones(4)], bool)
  v = m.init(jax.random.key(0), curr, pos, mem, mpos, 32, keep)
  first = m.apply(v, curr, pos, method='first_self_attention')
  assert first.shape == (16, 32)
  np.testing.assert_allclose(m.apply(v, curr, pos, mem, mpos, 32, keep, first),
                             m.apply(v, curr, pos, mem, mpos, 32, keep), rtol=1e-6, atol=1e-6)


def test_rope_is_the_official_complex_rotation():
  dim, h, w = 16, 3, 5
  x = np.random.default_rng(1).standard_normal((h * w, 1, dim)).astype(np.float32)
  freqs = 1.0 / (10000.0 ** (np.arange(0, dim, 4)[:dim // 4] / dim))
  t = np.arange(h * w)
  ang = np.concatenate([np.outer(t % w, freqs), np.outer(t // w, freqs)], -1)
  xc = x[..., 0::2] + 1j * x[..., 1::2]
  ref = xc * np.exp(1j * ang)[:, None]
  got = np.asarray(apply_rope(jnp.asarray(x), jnp.asarray(axial_rope_angles(dim, h, w))))
  np.testing.assert_allclose(got[..., 0::2], ref.real, atol=1e-5)
  np.testing.assert_allclose(got[..., 1::2], ref.imag, atol=1e-5)


def test_antialias_matrix_rows_are_normalised_box_like():
  m = bilinear_aa_matrix(16, 4)
  np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
  assert (m[0, 8:] == 0).all() and m[0, 1] > m[0, 0]


def _memory(cond_frames, ring_frames, hw=(2, 2), cc=2, ring=15):
  a = mb.empty(cc, ring, hw, 4, 8)
  for i, t in enumerate(cond_frames):
    a['cond_frame'][i], a['cond_valid'][i] = t, True
  for i, t in enumerate(ring_frames):
    a['ring_frame'][i], a['ring_age'][i] = t, i
    a['ring_ptr'][i] = t
  a['count'] = np.asarray(len(ring_frames), np.int32)
  return mb.ObjectMemory(**a)


def test_memory_read_uses_exact_offsets_forward_and_backward():
  mem = _memory([0, 9], [2, 3, 4, 5, 6, 7, 12])
  feats, tpos, fvalid, ptrs, ppos, pvalid, tmax = mb.read(mem, 8, 1, 20, 7, 16)
  assert feats.shape[0] == 2 + 6 and ptrs.shape[0] == 2 + 15
  assert fvalid.tolist() == [True, True] + [True] * 6        # frames 7..2 at t_rel 1..6
  assert tpos.tolist() == [6, 6, 0, 1, 2, 3, 4, 5]
  # Pointers: past cond frame 0 only (9 is in the future); ring frames 2..7, not 12.
  assert pvalid.tolist()[:2] == [True, False]
  assert sorted(np.asarray(ppos)[2:][np.asarray(pvalid)[2:]].tolist()) == [1, 2, 3, 4, 5, 6]
  assert float(tmax) == 15.0
  # Backwards from frame 1: t_rel frames 2..7 present; pointer of cond frame 9 (pos 8), not 0.
  feats, tpos, fvalid, ptrs, ppos, pvalid, tmax = mb.read(mem, 1, -1, 20, 7, 16)
  assert fvalid.tolist()[2:] == [True] * 6
  assert pvalid.tolist()[:2] == [False, True] and float(ppos[1]) == 8.0
  # Short videos: pointer distances limited to num_frames - 1.
  _, _, _, _, ppos, pvalid, tmax = mb.read(mem, 8, 1, 4, 7, 16)
  assert float(tmax) == 3.0
  assert sorted(np.asarray(ppos)[2:][np.asarray(pvalid)[2:]].tolist()) == [1, 2, 3]


def test_memory_write_is_fifo():
  mem = _memory([0], list(range(1, 16)))
  assert mb.cond_lookup(mem, 0)[0] and not mb.cond_lookup(mem, 1)[0]
  mem = mb.write(mem, jnp.ones((2, 2, 4), jnp.bfloat16), jnp.full((8,), 16.0), 16)
  frames = sorted(np.asarray(mem.ring_frame).tolist())
  assert frames == list(range(2, 17))                 # frame 1 (oldest) evicted


@pytest.fixture(scope='module')
def small():
  """Random weights filled from the variable shapes (no compiled init: it costs minutes)."""
  model = SAM2(image_size=256)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((256, 256, 3), jnp.uint8))
  def fill(name, shape, rng):
    if name == 'scale':
      return np.ones(shape, np.float32)
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)
  return model, numpy_variables(shapes, fill)


@pytest.mark.slow   # ~27 s
def test_predictor_workflow(small):
  """Objects on different frames, forward/backward passes, a correction; compiles counted."""
  model, params = small
  traces = []
  pred = Sam2Predictor(params, model, Sam2Settings(chunk=2), on_trace=traces.append)
  frames = random_frames(7, (40, 60))
  state = pred.init_state(frames)
  with pytest.raises(InputError):
    pred.add_new_points_or_box(state, 9, 1, points=[[5, 5]], labels=[1])

  f, ids, logits = pred.add_new_points_or_box(state, 3, 1, points=[[30, 20]], labels=[1])
  assert (f, ids, logits.shape) == (3, [1], (1, 1, 40, 60))
  first = pred.frame_outputs(state, 3)[1]
  assert first.choice in (1, 2, 3)                    # one click on a new frame: multimask
  mask = np.zeros((40, 60), bool)
  mask[10:30, 20:40] = True
  f, ids, logits = pred.add_new_mask(state, 5, 2, mask)   # second object, later frame
  assert ids == [1, 2] and logits.shape == (2, 1, 40, 60)
  assert np.all(logits[0] == -1024.0)                 # object 1 has no output on frame 5 yet
  assert pred.frame_outputs(state, 5)[2].score == 10.0
  assert ((logits[1, 0] > 0) == mask).mean() > 0.95

  out = {t: v for t, _, v in pred.propagate_in_video(state)}
  assert sorted(out) == [3, 4, 5, 6]
  np.testing.assert_array_equal(out[3][0, 0] > 0, logits_at(pred, state, 3, 0) > 0)
  assert set(state.objects[2].non_cond) == {3, 4, 6}  # tracked before its prompt frame too
  back = [t for t, _, _ in pred.propagate_in_video(state, reverse=True)]
  assert back == [3, 2, 1, 0]
  assert traces.count('propagate') == 1               # 2 chunks, both directions: one compile

  # A negative click on a tracked frame: memory-conditioned, becomes a conditioning frame.
  pred.add_new_points_or_box(state, 4, 1, points=[[30, 20]], labels=[0])
  obj = state.objects[1]
  assert 4 in obj.temp_cond and 4 in obj.non_cond
  list(pred.propagate_in_video(state))
  assert set(obj.cond) == {3, 4} and 4 not in obj.non_cond
  assert traces.count('points') == 1                  # same point bucket and memory shape
  assert traces.count('propagate') == 2               # 2 conditioning slots: one more compile


def logits_at(pred, state, frame, k):
  o = list(pred.frame_outputs(state, frame).values())[k]
  return np.asarray(pred._to_video(o.pred_masks[None], state.video_hw))[0]
