"""``python -m memvos_jax segment`` on an mp4: PNGs, overlay mp4, GIF, JSON; bad input."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from memvos_jax.apps import visualize
from memvos_jax.data import video_file
from memvos_jax.data.video_folder import davis_palette

from conftest import CHILD_TIMEOUT_S, child_env

REPO = pathlib.Path(__file__).resolve().parents[1]
T, H, W = 10, 48, 80


def _inputs(tmp_path):
  video = tmp_path / 'in.mp4'
  rng = np.random.default_rng(0)
  with visualize.OverlayVideoWriter(str(video), 10.0) as w:
    for t in range(T):
      f = np.full((H, W, 3), 40, np.uint8)
      f[10:26, 5 + 4 * t:21 + 4 * t] = (200, 60, 60)
      w.write(f + rng.integers(0, 10, f.shape, dtype=np.uint8))
  m = np.zeros((H, W), np.uint8)
  m[10:26, 5:21] = 1
  im = Image.fromarray(m, mode='P')
  im.putpalette(davis_palette())
  im.save(tmp_path / 'first.png')
  return video, tmp_path / 'first.png'


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'memvos_jax', 'segment', *map(str, args)],
                        capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                        env=child_env())   # FAST_COMPILE: what is checked is the plumbing


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_segment_mp4_writes_everything(tmp_path):
  video, mask = _inputs(tmp_path)
  out = tmp_path / 'out'
  r = _cli('--video', video, '--mask', mask, '--out', out, '--chunk', 4, '--size', 32)
  assert r.returncode == 0, r.stderr
  assert 'frames/s' in r.stdout
  pngs = sorted((out / 'masks').glob('*.png'))
  assert len(pngs) == T
  first = Image.open(pngs[0])
  assert first.mode == 'P' and first.size == (W, H)        # restored to the video size
  reader = video_file.VideoReader(str(out / 'overlay.mp4'), chunk=T)
  assert reader.num_frames == T and reader.frame_size == (H, W)
  gif = Image.open(out / 'overlay.gif')
  assert gif.n_frames == T and gif.size == (W, H)
  assert gif.info['duration'] == 100                       # the mp4's 10 fps
  stats = json.loads((out / 'objects.json').read_text())
  assert stats['frames'] == T
  assert abs(stats['objects']['0']['1']['area'] - 16 * 16) < 0.2 * 16 * 16  # given mask, resized back
  assert Image.open(out / 'contact_sheet.png').size[0] > 0


@pytest.mark.parametrize('problem', ['rgb_mask', 'size', 'bad_video'])
def test_segment_bad_input_names_the_file(tmp_path, problem):
  video, mask = _inputs(tmp_path)
  if problem == 'rgb_mask':
    Image.open(mask).convert('RGB').save(mask)
    expect = 'not a palette or greyscale-with-ids'
  elif problem == 'size':
    Image.open(mask).resize((W + 2, H)).save(mask)
    expect = f'mask is {W + 2}x{H} but the video is {W}x{H}'
  else:
    video.write_bytes(b'not a video at all')
    expect = 'cannot decode video'
  r = _cli('--video', video, '--mask', mask, '--out', tmp_path / 'out')
  assert r.returncode == 1
  assert expect in r.stderr and (str(mask) in r.stderr or str(video) in r.stderr)


def test_segment_frame_folder_with_a_later_object(tmp_path):
  """--mask FRAME:PATH adds an object later; --fps sets the overlays' speed."""
  frames = tmp_path / 'frames'
  frames.mkdir()
  for t in range(6):
    f = np.full((H, W, 3), 40, np.uint8)
    f[10:26, 5 + 4 * t:21 + 4 * t] = (200, 60, 60)
    f[30:44, 50:70] = (60, 200, 60)
    Image.fromarray(f).save(frames / f'{t:05d}.png')
  for name, box, k in (('a.png', (slice(10, 26), slice(5, 21)), 1),
                       ('b.png', (slice(30, 44), slice(50, 70)), 2)):
    m = np.zeros((H, W), np.uint8)
    m[box] = k
    im = Image.fromarray(m, mode='P')
    im.putpalette(davis_palette())
    im.save(tmp_path / name)
  out = tmp_path / 'out'
  r = _cli('--video', frames, '--mask', tmp_path / 'a.png', '--mask', f'3:{tmp_path / "b.png"}',
           '--out', out, '--fps', 12, '--size', 0, '--chunk', 4)
  assert r.returncode == 0, r.stderr
  (settings,) = [l for l in r.stderr.splitlines() if l.startswith('settings:')]
  assert 'memory capacity 20 frames' in settings and '12 fps' in settings
  ids = [set(np.unique(np.array(Image.open(out / 'masks' / f'{t:05d}.png'))).tolist())
         for t in range(6)]
  # Object 2 exists from frame 3 on (its annotation); whether the model keeps a 14x20 px
  # flat box on the following frames is the model's quality, not the CLI's plumbing.
  assert all(2 not in s for s in ids[:3]) and 2 in ids[3]
  assert Image.open(out / 'overlay.gif').info['duration'] == 80      # 12 fps (GIF: 1/100 s)
  assert video_file.VideoReader(str(out / 'overlay.mp4'), chunk=6).fps == pytest.approx(12)
  assert json.loads((out / 'objects.json').read_text())['fps'] == 12
  assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png', 'b.png', 'frames', 'out']
