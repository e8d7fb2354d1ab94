"""Parity with the official STM on the stm_random fixture (needs ../shared).

The fixture's expected/bike.npz was recorded with the official code (torch,
CPU, float32, eval_DAVIS.py's loop, Mem_every 5). Rerunning the official code
on another x86 CPU (an Intel Xeon, 2026-11-26) reproduces frames 0-2 to
99.99 % of pixels and frame 3 to only 98.4 % (see below). Frames 0 and 1
(memory: the annotated frame) must agree on >= 99.9% of pixels, masks and
probabilities within 2/255.

Frames 2 and 3 read frame 1's and 2's *predicted* soft masks, and with these
random weights the network is chaotic there: both objects' probabilities
saturate within a few float32 ulps of 1, so float32 rounding noise in one
frame's probabilities (~1e-5) moves the next frame's by up to 0.5. The
official code itself, run with oneDNN disabled (the same float32 arithmetic,
another summation order), agrees with the recording on only 98.14% / 91.13%
(frame 2, masks / probabilities) and 90.96% / 75.31% (frame 3); this port
gets 98.11% / 90.95% and 91.57% / 75.70%. Fed the official frame-(t-1)
probabilities as memory (float32, from a rerun of the official code), this
port's frames 2 and 3 agree on 99.997% of pixels. Frames 2 and 3 are checked
against bounds just below that noise floor.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import memvos_jax
from conftest import REPO, need_shared, official_npz
from memvos_jax import families
from memvos_jax.inference import core
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.data import video_folder

FRACTION = 0.999
# Frames past the first memory read of a prediction: (masks, probabilities)
# at or below which even the official code (oneDNN off) falls; see above.
NOISE_FLOOR = {2: (0.97, 0.88), 3: (0.89, 0.72)}


@pytest.fixture(scope='module')
def stm_npz(tmp_path_factory):
  return official_npz(tmp_path_factory, 'stm_random')


@pytest.fixture(scope='module')
def expected():
  return np.load(need_shared('fixtures', 'stm_random', 'expected', 'bike.npz'))


@pytest.fixture(scope='module')
def bike_run(stm_npz, expected):
  root = need_shared('data', 'real_clips')
  seg = memvos_jax.load('stm', str(stm_npz))           # the Python API's loading path
  assert seg.clip.family.name == 'stm'
  clip_seg = ClipSegmenter(seg.model, seg.variables, chunk=4, return_probs=True,
                                    mem_every=int(expected['mem_every']))
  clip = video_folder.find_clips(root, ['bike'])[0]
  got = {}
  clip_seg.segment(clip, on_frame=lambda i, ids, probs: got.__setitem__(i, (ids, probs)))
  return got


def _agreement(got, expected, t):
  mask = np.mean(got[t][0] == expected['masks'][t])
  probs = np.mean(np.abs(got[t][1] * 255.0 - expected['probs_u8'][t].astype(np.float32)) <= 2.0)
  return mask, probs


def test_first_frames_match_official(bike_run, expected):
  for t in (0, 1):
    mask, probs = _agreement(bike_run, expected, t)
    assert mask >= FRACTION and probs >= FRACTION, (t, mask, probs)
  np.testing.assert_allclose(bike_run[0][1] * 255.0, expected['probs_u8'][0], atol=0.5)


def test_later_frames_within_official_noise_floor(bike_run, expected):
  assert len(expected['masks']) == 4
  for t, (mask_floor, prob_floor) in NOISE_FLOOR.items():
    mask, probs = _agreement(bike_run, expected, t)
    assert mask >= mask_floor and probs >= prob_floor, (t, mask, probs)


def test_eval_py_on_bike(stm_npz, expected, tmp_path):
  root = need_shared('data', 'real_clips')
  out = tmp_path / 'out'
  cmd = [sys.executable, str(REPO / 'eval.py'), '--config', str(REPO / 'configs/stm.py:runlocal'),
         f'--config.checkpoint={stm_npz}', f'--config.data.root={root}',
         '--config.data.clips=bike', f'--workdir={out}']
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'frames/s' in r.stdout
  names = sorted(os.listdir(out / 'bike'))
  assert names == [f'{i:05d}.png' for i in range(4)]
  for t in (0, 1):
    png = Image.open(out / 'bike' / names[t])
    assert png.mode == 'P'
    assert np.mean(np.array(png) == expected['masks'][t]) >= FRACTION


def official_teacher_forced(expected):
  """The official STM's bike outputs, teacher-forced with the recording.

  Recorded with ``benchmarks/official_runner.py --model stm --teacher
  <fixture bike.npz>`` (the official ``Run_video`` loop, each frame t >= 2
  memorising the recording's round(255 p) frame t-1 instead of its own
  estimate). Stored as the difference from the fixture's probabilities on
  frames 2-3 (``tests/data/stm_teacher_forced/README.md``); frames 0-1 are
  the fixture's own (their memory is the annotation either way). Returns
  (probs_u8 [T, K+1, H, W], masks [T, H, W] labels as in the recording).
  """
  delta = np.load(os.path.join(REPO, 'tests', 'data', 'stm_teacher_forced', 'bike.npz'))
  probs = expected['probs_u8'].astype(np.int16)
  masks = expected['masks'].copy()
  for i, t in enumerate(delta['frames']):
    probs[t] += delta['probs_u8_minus_fixture'][i]
    masks[t] = delta['masks'][i]
  return probs.astype(np.uint8), masks


def test_teacher_forced_every_frame_matches_official(stm_npz, expected):
  """Both ports memorise the same frame t-1 probabilities: every frame must match.

  Frame t >= 2 memorises the recording's frame t-1 probabilities (round(255
  p)) instead of its own prediction, here and in the official run it is
  compared with (``official_teacher_forced``), so the chaotic amplification
  of float32 noise across frames (module docstring) is gone and each frame
  tests one step of the network: >= 99.9 % of argmax and of probabilities
  within 2/255 on every frame. The free-running figures stay a report
  (``test_later_frames_within_official_noise_floor``).
  """
  root = need_shared('data', 'real_clips')
  official, official_masks = official_teacher_forced(expected)
  seg = memvos_jax.load('stm', str(stm_npz), quiet=True)
  family = families.get('stm')
  clip = video_folder.find_clips(root, ['bike'])[0]
  ann = video_folder.read_annotations(clip)
  labels = [int(l) for l in expected['labels']]
  lut = np.zeros(256, np.uint8)
  lut[labels] = np.arange(1, len(labels) + 1)
  t_total = len(clip.frame_paths)
  settings = family.make_settings(mem_every=int(expected['mem_every']), capacity=4, chunk=1,
                                  return_probs=True)
  fn = core.make_chunk_fn(seg.model, settings, step=family.step)
  state = family.init_state(seg.model, settings, len(labels), ann.size)
  report = []
  for t, (_, frames) in enumerate(video_folder.FrameReader(clip, 1, ann.size)):
    teacher = expected['probs_u8'][t].astype(np.float32) / 255.0        # [K+1, H, W]
    xs = core.FrameInput(
        image=frames[:1], annotation=(lut[ann.masks[0]] if t == 0 else
                                      np.zeros(ann.size, np.uint8))[None],
        given=np.full((1, len(labels)), t == 0), index=np.array([t], np.int32),
        is_last=np.array([t == t_total - 1]), valid=np.ones(1, bool),
        num_frames=np.array([t_total], np.int32), teacher=teacher[None])
    state, out = fn(seg.variables, state, xs)
    probs = np.asarray(out.probs[0]) * 255.0
    close = np.mean(np.abs(probs - official[t].astype(np.float32)) <= 2.0)
    masks = np.mean(np.asarray(out.mask[0]) == lut[official_masks[t]])
    report.append((t, masks, close))
  print('teacher-forced STM (frame, masks, probabilities within 2/255):', report)
  for t, masks, close in report:
    assert masks >= FRACTION and close >= FRACTION, (t, masks, close)
