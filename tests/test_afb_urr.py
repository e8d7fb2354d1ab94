"""AFB-URR: URR maths, the scan core on small synthetic clips, the converter, API and eval.py."""

import functools
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import CHILD_TIMEOUT_S, REPO, need_shared
from conftest import official_state as rebuild_state
from helpers import numpy_variables, random_frames
from memvos_jax import api, registry
from memvos_jax.errors import CheckpointError
from memvos_jax.inference import core
from memvos_jax.memory import adaptive
from memvos_jax.models.afb_urr import convert as convert_afb
from memvos_jax.models.afb_urr import urr

H, W, K = 64, 96, 2
N = (H // 16) * (W // 16)          # memory positions per frame


# ---------------------------------------------------------------- URR maths


def test_uncertainty_is_exp_one_minus_top1_over_top2():
  rng = np.random.default_rng(0)
  p = rng.random((3, 5, 7)).astype(np.float32)
  s = np.sort(p, axis=0)
  want = np.exp(1 - s[-1] / (s[-2] + 1e-8))
  got = np.asarray(urr.uncertainty(jnp.asarray(p), axis=0))
  assert got.shape == (1, 5, 7)
  np.testing.assert_allclose(got[0], want, rtol=1e-6)
  assert np.all(got <= 1.0) and np.all(got > 0)          # 1 exactly where top1 == top2


def test_confidence_loss_is_the_official_norm():
  rng = np.random.default_rng(1)
  fg = rng.random((2, 3, 6, 8)).astype(np.float32)
  e = np.exp(fg - fg.max(axis=1, keepdims=True))
  soft = e / e.sum(axis=1, keepdims=True)
  s = np.sort(soft, axis=1)
  u = np.exp(1 - s[:, -1] / (s[:, -2] + 1e-8))             # [B, H, W]
  want = np.mean(np.linalg.norm(u.reshape(2, -1), axis=1) / math.sqrt(6 * 8))
  assert float(urr.confidence_loss(jnp.asarray(fg))) == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------- scan core


@functools.lru_cache(maxsize=None)
def _model():
  """AFB-URR with He-random weights drawn in numpy (model.init of ResNet-50 x2 is slow)."""
  family = registry.get('afb_urr')
  model = family.build()

  def fill(name, shape, rng):
    if name == 'kernel':
      return rng.standard_normal(shape, np.float32) * np.float32(
          np.sqrt(2.0 / np.prod(shape[:-1])))
    if name in ('scale', 'var'):
      return np.ones(shape, np.float32)
    if name == 'bias':
      return (0.05 * rng.standard_normal(shape)).astype(np.float32)
    return np.zeros(shape, np.float32)

  return model, numpy_variables(convert_afb.abstract_variables(model), fill)


def _clip(t, intro=((0, 1), (3, 2)), seed=0):
  """Random frames; object ``k`` annotated (given) on frame ``f`` for (f, k) in intro."""
  images = random_frames(t, (H, W), seed)
  annotation = np.zeros((t, H, W), np.uint8)
  given = np.zeros((t, K), bool)
  boxes = {1: (slice(10, 30), slice(10, 40)), 2: (slice(30, 50), slice(50, 90))}
  for f, k in intro:
    annotation[f][boxes[k]] = k
    given[f, k - 1] = True
  return images, annotation, given


# Merging threshold above the cosines of the random network's keys (they are all
# > 0.95): every new feature is appended, so small budgets overflow every frame.
SETTINGS = dict(budget=3 * 60, thres_close=0.999, return_probs=True)


def _run(t, chunk, intro=((0, 1), (3, 2)), **options):
  model, variables = _model()
  family = registry.get('afb_urr')
  settings = family.make_settings(**{**SETTINGS, **options}, chunk=chunk,
                                  capacity=family.memory_frames(t, {0}, {}))
  images, annotation, given = _clip(t, intro)
  fn = core.make_chunk_fn(model, settings, step=family.step,
                               on_trace=lambda: traces.append(1))
  traces = []
  state = family.init_state(model, settings, K, (H, W))
  shapes = jax.tree.map(lambda a: a.shape, state)
  masks, probs, banks = [], [], []
  for s in range(0, t, chunk):
    n = min(chunk, t - s)
    pad = lambda a: np.concatenate([a[s:s + n], np.zeros((chunk - n,) + a.shape[1:], a.dtype)])
    idx = np.arange(s, s + chunk, dtype=np.int32)
    xs = core.FrameInput(image=pad(images), annotation=pad(annotation), given=pad(given),
                              index=idx, is_last=idx == t - 1, valid=np.arange(chunk) < n)
    state, out = fn(variables, state, xs)
    assert jax.tree.map(lambda a: a.shape, state) == shapes      # memory never grows
    masks.append(np.asarray(out.mask[:n]))
    probs.append(np.asarray(out.probs[:n]))
    banks.append(jax.tree.map(np.asarray, state.bank))
  return np.concatenate(masks), np.concatenate(probs), banks, len(traces)


@pytest.fixture(scope='module')
def single():
  return _run(20, 1)


@pytest.mark.fast_compile   # our runs (the ``single`` fixture)
def test_given_masks_are_exact_and_absent_objects_never_win(single):
  masks, probs, _, traces = single
  _, annotation, _ = _clip(20)
  assert traces == 1
  np.testing.assert_array_equal(masks[0], annotation[0])             # frame 0: one-hot GT
  np.testing.assert_array_equal(probs[0].argmax(0), annotation[0])
  assert set(np.unique(probs[0])) == {0.0, 1.0}
  assert not np.any(masks[:3] == 2)                                  # not introduced yet
  assert np.all(probs[:3, 2] < 1e-30)
  inside = annotation[3] == 2
  assert np.all(masks[3][inside] == 2) and np.all(probs[3, 2][inside] == 1.0)
  assert np.all(probs[3, 2][~inside] == 0.0)


@pytest.mark.fast_compile   # our runs (the ``single`` fixture)
def test_introducing_an_object_reinitialises_every_bank(single):
  _, _, banks, _ = single
  b = banks[3]                                                       # after frame 3
  np.testing.assert_array_equal(b.count, [N] * (K + 1))
  assert np.all(b.frame[:, :N] == 3) and np.all(b.frame[:, N:] == -1)
  assert np.all(b.usage == 0)


@pytest.mark.fast_compile   # our runs (the ``single`` fixture)
def test_long_clip_far_past_budget_keeps_exact_slot_accounting(single):
  _, _, banks, _ = single
  slots = banks[0].keys.shape[1]
  limit = adaptive.class_limit(SETTINGS['budget'], K + 1, slots)
  assert slots == limit == 60                                         # min(budget/3, 19 frames)
  for t, b in enumerate(banks[:-1]):
    assert np.all(b.count <= limit), t
    for c in range(K + 1):
      n = b.count[c]
      assert np.all(b.frame[c, n:] == -1) and np.all(b.usage[c, n:] == 0)
      assert np.all((b.frame[c, :n] >= 0) & (b.frame[c, :n] <= t))
      assert np.all(np.diff(b.frame[c, :n]) >= 0)                    # official order: by age
      assert len(np.unique(b.keys[c, :n], axis=0)) == n               # no entry duplicated
      assert np.sum(b.frame[c, :n] == t) == N - b.merged[c]           # this frame's appends
  assert banks[-2].remove_calls.min() >= 6                           # LFU removal fired often
  np.testing.assert_array_equal(banks[-1].count, banks[-2].count)    # last frame not memorised


@pytest.mark.fast_compile   # our runs (the ``single`` fixture)
def test_chunked_scan_equals_single_frame_steps(single):
  masks, probs, _, traces = _run(20, 8)                              # 3 chunks, last padded
  assert traces == 1
  np.testing.assert_array_equal(masks, single[0])
  np.testing.assert_allclose(probs, single[1], atol=1e-5)


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
@pytest.mark.fast_compile   # our runs (the ``single`` fixture)
def test_api_segment_and_stream_equal_the_scan(single):
  model, variables = _model()
  images, annotation, _ = _clip(20)
  options = {k: v for k, v in SETTINGS.items() if k != 'return_probs'}
  seg = api.Segmenter(model, variables, **options)
  ids = seg.segment(images, {0: annotation[0], 3: annotation[3]})
  np.testing.assert_array_equal(ids, single[0])
  session = seg.session((H, W), max_objects=K)
  for t in range(8):
    got = session.step(images[t], {0: annotation[0], 3: annotation[3]}.get(t))
    np.testing.assert_array_equal(got, single[0][t], err_msg=f'frame {t}')


# ---------------------------------------------------------------- converter


@pytest.fixture(scope='module')
def official_state():
  return rebuild_state('afb_urr_random')


def test_converter_maps_every_weight_and_lists_what_it_ignores(official_state):
  model, _ = _model()
  ignored = convert_afb.ignored_keys(official_state)
  assert {'encoder_q.mean', 'encoder_q.std', 'encoder_m.mean', 'encoder_m.std'} <= set(ignored)
  assert all(k.endswith(('.mean', '.std', '.num_batches_tracked')) for k in ignored)
  v = convert_afb.convert(official_state, model)
  n_leaves = len(jax.tree.leaves(v))
  assert n_leaves + len(ignored) == len(official_state)
  w = official_state['decoder.local_pred2.weight']
  np.testing.assert_array_equal(v['params']['decoder']['local_pred2']['kernel'],
                                w.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(v['params']['encoder_m']['layer3_5']['conv3']['kernel'],
                                official_state['encoder_m.res4.5.conv3.weight'].transpose(2, 3, 1, 0))
  # DataParallel prefix: same result.
  v2 = convert_afb.convert({'module.' + k: a for k, a in official_state.items()}, model)
  assert jax.tree.all(jax.tree.map(np.array_equal, v, v2))


def test_converter_refuses_mismatches(official_state):
  model, _ = _model()
  bad = dict(official_state)
  del bad['decoder.RF2.ResMM.conv1.bias']
  with pytest.raises(CheckpointError, match=r'1 missing: decoder\.RF2\.ResMM\.conv1\.bias'):
    convert_afb.convert(bad, model, source='x.pth')
  bad = dict(official_state, **{'decoder.extra.weight': np.zeros(3, np.float32)})
  with pytest.raises(CheckpointError, match='unexpected: decoder.extra.weight'):
    convert_afb.convert(bad, model, source='x.pth')
  bad = dict(official_state, **{'encoder_q.std': np.ones((1, 3, 1, 1), np.float32)})
  with pytest.raises(CheckpointError, match='x.pth: encoder_q.std'):
    convert_afb.convert(bad, model, source='x.pth')


@pytest.mark.slow   # eval.py on bike in a subprocess: ~40 s
def test_eval_py_on_bike_matches_official_masks(official_state, tmp_path):
  root = need_shared('data', 'real_clips')
  expected = np.load(need_shared('fixtures', 'afb_urr_random', 'expected', 'bike.npz'))
  ckpt = tmp_path / 'afb_urr_random.npz'
  np.savez(ckpt, **official_state)
  out = tmp_path / 'out'
  cmd = [sys.executable, str(REPO / 'eval.py'), '--config', str(REPO / 'configs/afb_urr.py:runlocal'),
         f'--config.checkpoint={ckpt}', f'--config.data.root={root}',
         '--config.data.clips=bike', f'--workdir={out}']
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'frames/s' in r.stdout
  pngs = sorted(os.listdir(out / 'bike'))
  assert pngs == [f'{f}.png' for f in expected['frames']]
  labels = expected['labels']
  for t, name in enumerate(pngs):
    ids = np.array(Image.open(out / 'bike' / name))
    ref = np.concatenate([[0], labels])[expected['masks'][t]]        # class -> object id
    assert np.mean(ids == ref) >= 0.999, (t, np.mean(ids == ref))


def test_official_release_container_and_bare_state_dict_convert_alike(official_state, tmp_path):
  """The release is {'epoch', 'model': state_dict, 'loss', 'seed', 'optimizer'} (torch.save)."""
  import collections
  from test_torch_pickle import _Archive        # torch.save-format writer without torch
  from memvos_jax.registry import convert_file
  ar = _Archive()
  sd = collections.OrderedDict((k, ar.tensor(v)) for k, v in official_state.items())
  ar.write(tmp_path / 'afb_urr.pth', {
      'epoch': 12, 'model': sd, 'loss': 0.25, 'seed': 2020,
      'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-5, 'params': [0, 1]}]}})
  bare = tmp_path / 'bare.npz'
  np.savez(bare, **official_state)
  a = convert_file(str(tmp_path / 'afb_urr.pth'), 'afb_urr')
  b = convert_file(str(bare), 'afb_urr')
  assert jax.tree.all(jax.tree.map(np.array_equal, a, b))
  # memvos_jax.load reads configs/afb_urr.py and the checkpoint, like eval.py.
  import memvos_jax
  seg = memvos_jax.load('afb_urr', str(tmp_path / 'afb_urr.pth'), update_rate=0.05)
  assert seg.clip.family.name == 'afb_urr' and seg.clip.options['update_rate'] == 0.05
  with pytest.raises(TypeError, match='mem_every'):
    memvos_jax.load('afb_urr', str(bare), mem_every=3)
