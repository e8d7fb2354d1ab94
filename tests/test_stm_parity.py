"""Parity with the official STM on the stm_random fixture (needs ../shared).

The fixture's expected/bike.npz was recorded with the official code (torch,
CPU, float32, eval_DAVIS.py's loop, Mem_every 5); rerunning the official code
here reproduces it exactly. Frames 0 and 1 (memory: the annotated frame)
must agree on >= 99.9% of pixels, masks and probabilities within 2/255.

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
from memvos_jax import pipeline
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
  clip_seg = pipeline.ClipSegmenter(seg.model, seg.variables, chunk=4, return_probs=True,
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
