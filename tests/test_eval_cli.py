"""eval.py end to end on tiny folders: outputs, palette, bad input, kept outputs."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_stcn
from memvos_jax.data.video_folder import davis_palette

from conftest import CHILD_TIMEOUT_S, child_env

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = ['--config.network.key_backbone=resnet18', '--config.network.key_dim=16',
         '--config.network.value_dim=32']


def _clip(root, name, frames=3, size=(32, 48), ann=True, davis=False):
  sub = '480p' if davis else ''
  img_dir = pathlib.Path(root, 'JPEGImages', sub, name)
  ann_dir = pathlib.Path(root, 'Annotations', sub, name)
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for i in range(frames):
    Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(img_dir / f'{i:05d}.jpg')
  if ann:
    m = np.zeros(size, np.uint8)
    m[4:12, 4:20] = 3
    m[16:28, 24:40] = 7
    im = Image.fromarray(m, mode='P')
    im.putpalette(davis_palette())
    im.save(ann_dir / '00000.png')
  return img_dir, ann_dir


def _eval(root, out, *extra):
  cmd = [sys.executable, str(REPO / 'eval.py'), '--config', str(REPO / 'configs/stcn.py'),
         f'--config.data.root={root}', f'--workdir={out}', *SMALL, *extra]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                        env=child_env())   # FAST_COMPILE: what is checked is the plumbing


@pytest.mark.slow   # eval.py in subprocesses: ~45-65 s
def test_eval_writes_indexed_pngs_and_keeps_good_clips(tmp_path):
  root = tmp_path / 'data'
  _clip(root, 'good', davis=True)
  _, ann_dir = _clip(root, 'noanno', davis=True)
  os.remove(ann_dir / '00000.png')
  Image.fromarray(np.zeros((32, 48), np.uint8), mode='P').save(ann_dir / '00001.png')
  out = tmp_path / 'out'
  r = _eval(root, out)
  assert r.returncode == 1, r.stderr
  assert 'noanno' in r.stderr and 'no annotation for the first frame' in r.stderr
  pngs = sorted(os.listdir(out / 'good'))
  assert pngs == ['00000.png', '00001.png', '00002.png']
  first = Image.open(out / 'good' / '00000.png')
  assert first.mode == 'P' and first.getpalette()[:30] == davis_palette()[:30]
  assert set(np.unique(np.array(first))) == {0, 3, 7}       # original object ids
  assert 'frames/s' in r.stdout


@pytest.mark.slow   # eval.py in subprocesses: ~45-65 s
def test_eval_bad_inputs_name_the_file(tmp_path):
  root = tmp_path / 'data'
  _clip(root, 'a')
  _, ann_dir = _clip(root, 'b', size=(32, 48))
  Image.open(ann_dir / '00000.png').resize((40, 32)).save(ann_dir / '00000.png')
  img_dir, _ = _clip(root, 'c')
  (img_dir / '00001.jpg').write_bytes(b'not a jpeg')
  r = _eval(root, tmp_path / 'out')
  assert r.returncode == 1
  assert '00000.png: annotation is 40x32 but frames are 48x32' in r.stderr
  assert '00001.jpg: cannot read image' in r.stderr
  assert len(os.listdir(tmp_path / 'out' / 'a')) == 3        # the good clip is kept


def test_eval_bad_checkpoint_and_config(tmp_path):
  root = tmp_path / 'data'
  _clip(root, 'a')
  bad = tmp_path / 'bad.npz'
  np.savez(bad, **{'key_proj.key_proj.weight': np.zeros((1,))})
  r = _eval(root, tmp_path / 'out', f'--config.checkpoint={bad}')
  assert r.returncode == 1 and 'bad.npz: checkpoint does not match the network' in r.stderr
  r = _eval(root, tmp_path / 'out', '--config.inference.mem_evry=3')
  assert r.returncode != 0 and 'mem_evry' in r.stderr


@pytest.mark.slow   # builds and compiles the tiny STCN: ~50 s
def test_dense_ground_truth_is_not_fed_back(tmp_path):
  """DAVIS trainval has a mask for every frame: only the first one is input."""
  from memvos_jax.data import video_folder
  from memvos_jax.inference.clip import ClipSegmenter
  from memvos_jax.models import stcn
  root = tmp_path / 'data'
  _, ann_dir = _clip(root, 'dense', frames=4, davis=True)
  m = np.zeros((32, 48), np.uint8)
  m[0:6, 0:6] = 3                                   # a wrong "later" ground truth
  for i in range(1, 4):
    im = Image.fromarray(m, mode='P')
    im.putpalette(davis_palette())
    im.save(ann_dir / f'{i:05d}.png')
  model, variables = tiny_stcn((32, 48), 2)
  seg = ClipSegmenter(stcn.FAMILY, model, variables, chunk=2)
  got = {}
  seg.segment(video_folder.find_clips(root, ['dense'])[0],
              on_frame=lambda i, ids, probs: got.__setitem__(i, ids))
  assert set(np.unique(got[0])) == {0, 3, 7}       # frame 0 is the given annotation
  for i in range(1, 4):
    assert not np.array_equal(got[i], m)            # later frames are predictions


@pytest.mark.slow   # eval.py in subprocesses: ~45-65 s
def test_eval_scores_densely_annotated_clips(tmp_path):
  """DAVIS-style clips (ground truth on every frame) get the J&F table."""
  root = tmp_path / 'data'
  _, ann_dir = _clip(root, 'dense', frames=4, davis=True)
  first = Image.open(ann_dir / '00000.png')
  for i in range(1, 4):
    first.save(ann_dir / f'{i:05d}.png')
  _clip(root, 'sparse', frames=3, davis=True)
  out = tmp_path / 'out'
  r = _eval(root, out)
  assert r.returncode == 0, r.stderr
  assert 'J&F-Mean' in r.stdout and 'dense_1' in r.stdout and 'dense_2' in r.stdout
  assert 'sparse' not in (out / 'per-sequence_results.csv').read_text()
  assert 'cannot be scored locally' in r.stdout
  header = (out / 'global_results.csv').read_text().splitlines()[0]
  assert header == 'J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay'
