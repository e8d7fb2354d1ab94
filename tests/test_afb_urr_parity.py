"""Parity with the official AFB-URR on the afb_urr_random fixture (needs ../shared).

expected/bike.npz was recorded with the official evaluation loop (DAVIS
mode, torch CPU float32, budget 300000, update rate 0.1): masks, softmax
probabilities (as round(255 p)) and, per update and class, the bank size
before/after, the new keys merged, the distinct entries merged into and the
LFU removals. The scan is driven one frame per call so the banks can be
inspected after every update.
"""


import numpy as np
import pytest

from conftest import need_shared, official_state
from memvos_jax import families, inference
from memvos_jax.data import video_folder

MASK_FRACTION = 0.999
PROB_FRACTION = 0.999


@pytest.fixture(scope='module')
def afb_variables():
  family = families.get('afb_urr')
  model = family.build()
  state = official_state('afb_urr_random')
  return model, family.convert(state, model, source='afb_urr_random')


@pytest.fixture(scope='module')
def bike_run(afb_variables):
  root = need_shared('data', 'real_clips')
  expected = np.load(need_shared('fixtures', 'afb_urr_random', 'expected', 'bike.npz'))
  model, variables = afb_variables
  family = families.get('afb_urr')
  clip = video_folder.find_clips(root, ['bike'])[0]
  ann = video_folder.read_annotations(clip)
  t_total = len(clip.frame_paths)
  labels = [int(l) for l in np.unique(ann.masks[0]) if l]
  settings = family.make_settings(
      budget=int(expected['budget']), update_rate=float(expected['update_rate']),
      thres_close=float(expected['thres_close']), thres_valid=float(expected['thres_valid']),
      capacity=family.memory_frames(t_total, {0}, {}), chunk=1, return_probs=True)
  fn = inference.make_chunk_fn(model, settings, step=family.step)
  state = family.init_state(model, settings, len(labels), ann.size)
  lut = np.zeros(256, np.uint8)
  lut[labels] = np.arange(1, len(labels) + 1)
  out, banks = {}, {}
  for start, frames in video_folder.FrameReader(clip, 1, ann.size):
    t = start
    xs = inference.FrameInput(
        image=frames[:1], annotation=(lut[ann.masks[0]] if t == 0 else
                                      np.zeros(ann.size, np.uint8))[None],
        given=np.full((1, len(labels)), t == 0), index=np.array([t], np.int32),
        is_last=np.array([t == t_total - 1]), valid=np.ones(1, bool))
    state, o = fn(variables, state, xs)
    out[t] = (np.asarray(o.mask[0]), np.asarray(o.probs[0]))
    b = state.bank
    banks[t] = {name: np.asarray(getattr(b, name)) for name in
                ('count', 'merged', 'merge_targets', 'removed', 'remove_calls')}
  return expected, out, banks, state


def test_masks_match_official(bike_run):
  expected, out, _, _ = bike_run
  for t, ref in enumerate(expected['masks']):
    agree = np.mean(out[t][0] == ref)
    assert agree >= MASK_FRACTION, (t, agree)


def test_probabilities_match_official(bike_run):
  expected, out, _, _ = bike_run
  for i, t in enumerate(expected['prob_frames']):
    close = np.mean(np.abs(out[t][1] * 255.0 - expected['probs_u8'][i].astype(np.float32)) <= 2.0)
    assert close >= PROB_FRACTION, (t, close)
  np.testing.assert_allclose(out[0][1] * 255.0, expected['probs_u8'][0], atol=0.5)


def test_bank_sizes_after_every_update_match_official(bike_run):
  expected, _, banks, state = bike_run
  assert int(expected['obj_n']) == state.bank.count.shape[0]
  np.testing.assert_array_equal(banks[0]['count'], expected['bank_before'][0])  # init_bank
  for row, t in enumerate(expected['upd_t']):
    before = banks[t - 1]['count']
    after = banks[t]
    np.testing.assert_array_equal(before, expected['bank_before'][row], err_msg=f't={t}')
    np.testing.assert_array_equal(after['count'], expected['bank_after'][row], err_msg=f't={t}')
    np.testing.assert_array_equal(after['merged'], expected['merged'][row], err_msg=f't={t}')
    np.testing.assert_array_equal(after['merge_targets'], expected['merge_targets'][row])
    np.testing.assert_array_equal(after['removed'], expected['removed'][row])
    calls = after['remove_calls'] - banks[t - 1]['remove_calls']
    np.testing.assert_array_equal(calls, expected['remove_calls'][row])
  # No update after the last frame (official: only while t < T - 1).
  last = len(expected['masks']) - 1
  np.testing.assert_array_equal(banks[last]['count'], banks[last - 1]['count'])
