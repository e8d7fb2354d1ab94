"""The exported streaming step (``python -m memvos_jax export``) run by its runner alone.

The runner runs in a child process that never imports memvos_jax (checked), on
a synthetic clip, and must give the masks ``memvos_jax.load().session`` gives,
frame for frame, with memory eviction (capacity below the frames memorised),
with the weights beside the program and baked into it.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import memvos_jax
from memvos_jax.apps import export as export_app

from conftest import CHILD_TIMEOUT_S

pytestmark = pytest.mark.slow   # the default model compiled three times at 64x96: ~40 s

SIZE = (64, 96)
FRAMES = 14
CAPACITY = 3      # memory every 3 frames: frames 0, 3, 6, 9, 12 -> evictions (0 pinned)


def _clip(seed=0):
  """A textured background and two squares moving over it; the first frame's mask."""
  rng = np.random.default_rng(seed)
  h, w = SIZE
  yy, xx = np.mgrid[:h, :w]
  base = (np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1)
          * 60 + 120 + rng.normal(0, 8, (h, w, 3))).clip(0, 255)
  frames, first = [], None
  for t in range(FRAMES):
    img = base.copy()
    ids = np.zeros(SIZE, np.uint8)
    for label, (y, x, colour) in ((3, (10 + t, 12 + 2 * t, (230, 40, 40))),
                                  (7, (34, 70 - 2 * t, (40, 40, 230)))):
      img[y:y + 16, x:x + 16] = colour
      ids[y:y + 16, x:x + 16] = label
    frames.append(img.astype(np.uint8))
    first = ids if first is None else first
  return np.stack(frames), first


_CHILD = r'''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from runner import Streamer
z = np.load(sys.argv[2])
s = Streamer(sys.argv[1])
out = [s.step(f, z['first'] if t == 0 else None) for t, f in enumerate(z['frames'])]
np.save(sys.argv[3], np.stack(out))
print(json.dumps(sorted(m for m in sys.modules if m.startswith('memvos_jax'))))
'''


def _run_runner(artifact, clip_npz, out_npy):
  r = subprocess.run([sys.executable, '-c', _CHILD, str(artifact), str(clip_npz), str(out_npy)],
                     capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                     cwd=str(artifact))
  assert r.returncode == 0, r.stderr[-3000:]
  assert json.loads(r.stdout.strip().splitlines()[-1]) == []      # nothing of memvos_jax
  return np.load(out_npy)


def test_exported_step_gives_the_session_masks(tmp_path):
  frames, first = _clip()
  session = memvos_jax.load(quiet=True).session(SIZE, max_objects=2, memory_capacity=CAPACITY)
  want = np.stack([session.step(f, first if t == 0 else None) for t, f in enumerate(frames)])
  assert set(np.unique(want[1])) == {0, 3, 7}           # both objects tracked (64x96: 4x6 cells)
  np.savez(tmp_path / 'clip.npz', frames=frames, first=first)
  for bake in (False, True):
    art = tmp_path / f'art_bake{int(bake)}'
    m = memvos_jax.export(str(art), size=SIZE, objects=2, capacity=CAPACITY, bake=bake)
    assert m['frame_size'] == list(SIZE) and m['memory_capacity'] == CAPACITY
    assert (art / 'weights.npz').exists() != bake and (art / 'runner.py').exists()
    assert m['weights_sha256'] and m['baked_weights'] == bake
    got = _run_runner(art, tmp_path / 'clip.npz', tmp_path / f'got{int(bake)}.npy')
    assert got.shape == want.shape
    assert np.array_equal(got, want), (bake, np.mean(got != want))


def test_bad_export_arguments_are_one_line(capsys, tmp_path):
  assert export_app.main(['--out', str(tmp_path / 'x'), '--platforms', 'cpu,gpu2']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'unknown platform(s) gpu2' in err[0], err
  with pytest.raises(SystemExit):
    export_app.main(['--out', str(tmp_path / 'x'), '--size', '64by96'])
