"""STM scan core: official memory rule, one trace per clip, bounded memory, late objects."""

import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax import registry
from memvos_jax.inference import core
from memvos_jax.inference.core import pad_amounts, prepare_frame
from memvos_jax.memory import bank as membank
from memvos_jax.memory.readout import read_dense
from memvos_jax.models.stm import STM
from memvos_jax.models.stm import inference as inference_stm
from memvos_jax.nn.aggregate import aggregate

from helpers import numpy_variables, random_clip, run_chunks

pytestmark = pytest.mark.fast_compile   # ours against a transcription of the official loop

H, W, K = 40, 72, 2      # not multiples of 16: exercises the centred padding


@functools.lru_cache(maxsize=None)
def _model():
  model = STM(backbone='resnet18', key_dim=16, value_dim=32, decoder_dim=32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                          jnp.zeros((K, 32, 32)))

  # Variance-preserving kernels, small biases, identity BatchNorm: a well-conditioned
  # random network (one input LSB moves the outputs by < 1e-3, float noise by ~1e-6),
  # unlike He-init or the fixture's weights, whose saturated outputs amplify rounding.
  def fill(name, shape, rng):
    if name == 'kernel':
      return rng.normal(0, np.sqrt(1 / np.prod(shape[:-1])), shape).astype(np.float32)
    if name in ('scale', 'var'):
      return np.ones(shape, np.float32)
    return rng.normal(0, 0.05 if name == 'bias' else 0.0, shape).astype(np.float32)
  return model, numpy_variables(shapes, fill)


# Two compiled programs serve every test (compilation dominates their time).
S3 = inference_stm.STMSettings(mem_every=3, capacity=3, chunk=4, return_probs=True)
S3_WIDE = dataclasses.replace(S3, capacity=6)
TRACES = collections.Counter()


@functools.lru_cache(maxsize=None)
def _chunk_fn(settings):
  return core.make_chunk_fn(_model()[0], settings, step=inference_stm.frame_step,
                                 on_trace=lambda: TRACES.update([settings]))


def _clip(t, given_at=((0, (True, True)),), seed=0):
  return random_clip(t, (H, W), K, given_at, seed, top=8)


def _run(t, settings, given_at=((0, (True, True)),), last_known=True):
  model, variables = _model()
  state = inference_stm.init_state(settings, K, (H, W), model.key_dim, model.value_dim)
  return run_chunks(_chunk_fn(settings), variables, state, _clip(t, given_at), settings,
                    last_known)


def _official_loop(t, mem_every):
  """A direct transcription of the official ``Run_video`` (eval_DAVIS.py), no scan."""
  model, v = _model()
  images, annotation, _ = _clip(t)
  pt, pb, pl, pr = pad_amounts((H, W))
  padm = lambda m: jnp.pad(m, ((0, 0), (pt, pb), (pl, pr)))
  img = lambda i: prepare_frame(jnp.asarray(images[i]), pad_first=True)
  es = [np.stack([annotation[0] == k for k in range(K + 1)]).astype(np.float32)]
  to_memorize = set(range(0, t, mem_every))
  memorize = jax.jit(functools.partial(model.apply, v, method='encode_memory'))
  query = jax.jit(functools.partial(model.apply, v, method='encode_query'))
  decode = jax.jit(functools.partial(model.apply, v, method='decode'))
  keys = values = None
  for i in range(1, t):
    pk, pv = memorize(img(i - 1), padm(jnp.asarray(es[i - 1][1:])))
    tk = pk[:, None] if keys is None else jnp.concatenate([keys, pk[:, None]], 1)
    tv = pv[:, None] if values is None else jnp.concatenate([values, pv[:, None]], 1)
    qk, qv, r3, r2 = query(img(i)[None])
    _, h, w, ck = qk.shape
    q = qk[0].reshape(h * w, ck)
    reads = []
    for o in range(K):
      p = jax.nn.softmax(q @ tk[o].reshape(-1, ck).T / np.sqrt(ck), axis=1)   # [HW, THW]
      reads.append(p @ tv[o].reshape(p.shape[1], -1))
    logits = decode(jnp.stack(reads).reshape(K, h, w, -1), qv[0], r3, r2)
    probs = aggregate(jax.nn.softmax(logits, axis=-1)[..., 1])
    es.append(np.asarray(probs)[:, pt:pt + H, pl:pl + W])
    if i - 1 in to_memorize:
      keys, values = tk, tv
  return np.stack(es)


def test_matches_official_loop():
  """Kept frames 0, 3, 6 plus the previous frame as a temporary entry, soft masks."""
  t, every = 9, 3
  ref = _official_loop(t, every)
  _, masks, probs = _run(t, S3)
  # Float noise is ~5e-6 here; getting the schedule or the padding wrong moves
  # the probabilities by 0.04 to 0.8.
  np.testing.assert_allclose(probs, ref, atol=5e-5)
  assert np.mean(masks == ref.argmax(1)) > 0.999   # near-ties may flip a pixel


def test_scan_body_traced_once_per_clip_shape():
  before = TRACES[S3]
  _run(11, S3)                                        # 3 chunks, the last one padded
  _run(6, S3, given_at=((0, (True, False)), (2, (False, True))))
  assert TRACES[S3] == 1 and before <= 1


def test_memory_schedule_and_temporary_entry():
  family = registry.get('stm')
  need = family.memory_frames(9, {0}, {'mem_every': 3})
  assert need == 3 == S3.capacity   # frames 0, 3, 6 (the last frame is never read back)
  assert family.memory_frames(12, {0, 4}, {'mem_every': 3}) == 5   # 0, 3, 4, 6, 9
  a, b = _run(9, S3), _run(9, S3_WIDE)
  # Empty slots change only the summation order (masks may differ at exact ties).
  np.testing.assert_allclose(a[2], b[2], atol=5e-5)
  assert sorted(np.asarray(a[0].bank.frame).tolist()) == [0, 3, 6]
  # Streaming (no known last frame): frame 10 is held as the temporary entry.
  state, _, _ = _run(11, S3_WIDE, last_known=False)
  assert np.asarray(state.temp.frame).tolist() == [10]
  assert np.asarray(state.temp.valid).tolist() == [[True, True]]
  assert sorted(f for f in np.asarray(state.bank.frame).tolist() if f >= 0) == [0, 3, 6, 9]
  # A kept frame is not also the temporary entry.
  state, _, _ = _run(10, S3_WIDE, last_known=False)
  assert not np.any(np.asarray(state.temp.valid))


def test_bounded_capacity_keeps_pinned_frame_and_recent():
  state, masks, _ = _run(14, S3)                  # would keep 0, 3, 6, 9, 12
  frames = np.asarray(state.bank.frame).tolist()
  assert sorted(frames) == [0, 9, 12]             # annotated frame pinned + 2 most recent
  assert bool(state.bank.pinned[frames.index(0)])
  assert masks.shape == (14, H, W)


def test_object_appearing_later():
  given_at = ((0, (True, False)), (4, (False, True)))
  state, masks, probs = _run(8, S3_WIDE, given_at=given_at)
  assert np.all(probs[:4, 2] == 0) and not np.any(masks[:4] == 2)   # absent before frame 4
  ann = _clip(8, given_at)[1]
  assert np.all(masks[4][ann[4] == 2] == 2)                         # its mask is given there
  assert np.all(probs[5:, 2].max(axis=(1, 2)) > 0)                   # and tracked after
  frames = np.asarray(state.bank.frame).tolist()
  valid = np.asarray(state.bank.valid)
  assert sorted(f for f in frames if f >= 0) == [0, 3, 4, 6]
  assert bool(state.bank.pinned[frames.index(4)]) and not bool(state.bank.pinned[frames.index(3)])
  assert valid[frames.index(0)].tolist() == [True, False]           # no value before it appeared
  assert valid[frames.index(4)].tolist() == [True, True]


def test_read_dense_per_object_keys_and_temporary_bank():
  rng = np.random.default_rng(3)
  k, n, ck, cv, q = 2, 5, 4, 3, 6
  bank = membank.init(3, k, n, ck, cv, per_object_keys=True)
  temp = membank.init(1, k, n, ck, cv, per_object_keys=True)
  entries = []
  for f, obj in ((0, (True, True)), (5, (True, False))):
    key, val = rng.normal(size=(k, n, ck)), rng.normal(size=(k, n, cv))
    bank = membank.write(bank, key, val, jnp.asarray(obj), f)
    entries.append((key, val, obj))
  key, val = rng.normal(size=(k, n, ck)), rng.normal(size=(k, n, cv))
  temp = membank.write(temp, key, val, jnp.asarray((True, True)), 6)
  entries.append((key, val, (True, True)))
  query = rng.normal(size=(q, ck)).astype(np.float32)
  out, slot_weight = read_dense(bank, query, extra=temp)
  for o in range(k):   # reference: softmax over the object's valid frames, concatenated
    mk = np.concatenate([e[0][o] for e in entries if e[2][o]])
    mv = np.concatenate([e[1][o] for e in entries if e[2][o]])
    a = query @ mk.T / np.sqrt(ck)
    p = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(out[o], (p / p.sum(1, keepdims=True)) @ mv, rtol=1e-5, atol=1e-6)
  assert slot_weight.shape == (3,) and float(slot_weight[2]) == 0.0     # the free slot
  # Garbage in free slots and invalid (object, slot) pairs never contributes.
  noisy = bank.replace(keys=bank.keys.at[:, 2].set(50.0).at[1, 1].set(50.0),
                       values=bank.values.at[:, 2].set(1e3).at[1, 1].set(1e3))
  np.testing.assert_allclose(read_dense(noisy, query, extra=temp)[0], out, rtol=1e-6)
