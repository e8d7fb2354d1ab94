"""Batched clips: several clips of one frame size through one vmapped scan equal one by one.

Equal up to float rounding: XLA may pick other convolution kernels for a
batch, so a pixel whose two best classes are within ~1e-6 can flip (measured:
1 pixel of 3.1 million, default model, 4 clips x 24 frames at 270x480). The
tests allow 1e-3 of the pixels to differ, far below any semantic error (a
wrong clip, object or frame offset changes most of a frame).

``Segmenter.segment_batch`` / ``ClipSegmenter.segment_arrays_batch`` and
``eval.py --config.inference.batch_clips=N``: clips of different lengths and
object counts share one program (the largest object count and capacity; a
clip that ended is fed padding frames).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from helpers import random_frames, tiny_stcn
from memvos_jax.data.video_folder import davis_palette
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.models.stcn import FAMILY

from conftest import CHILD_TIMEOUT_S, child_env

pytestmark = pytest.mark.fast_compile   # batched against one by one

REPO = pathlib.Path(__file__).resolve().parents[1]
AGREE = 0.999    # share of pixels batch == one by one (see above)


def _clips(size):
  """Three clips: 7 frames / 2 objects, 3 frames / 1 object, 5 frames / 3 objects (ids 2, 5, 9)."""
  out = []
  for seed, (t, ids) in enumerate(((7, (1, 2)), (3, (4,)), (5, (2, 5, 9)))):
    frames = random_frames(t, size, seed)
    mask = np.zeros(size, np.uint8)
    for j, i in enumerate(ids):
      mask[4 + 8 * j:10 + 8 * j, 6 + 10 * j:16 + 10 * j] = i
    out.append((frames, {0: mask}))
  return out


@pytest.mark.slow
def test_batch_equals_one_by_one():
  size = (32, 48)
  model, variables = tiny_stcn(size, 3)
  seg = ClipSegmenter(FAMILY, model, variables, chunk=4, mem_every=2)
  clips = _clips(size)
  one = [seg.segment_arrays(f, m) for f, m in clips]
  traces = seg.trace_count
  batch = seg.segment_arrays_batch(clips)
  assert seg.trace_count == traces + 1          # one batched program for the three clips
  for a, b, (_, m) in zip(one, batch, clips):
    assert a.shape == b.shape
    assert set(np.unique(b)) <= set(np.unique(m[0]))
    np.testing.assert_array_equal(a[0], b[0])                 # the given frame
    assert np.mean(a == b) >= AGREE, np.mean(a == b)


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_batch_groups_clips_by_size():
  model, variables = tiny_stcn((32, 48), 2)
  seg = ClipSegmenter(FAMILY, model, variables, chunk=4)
  a, b = _clips((32, 48))[:2]
  c = _clips((48, 32))[0]
  outs = seg.segment_arrays_batch([a, c, b])
  assert [o.shape for o in outs] == [(7, 32, 48), (7, 48, 32), (3, 32, 48)]
  alone = seg.segment_arrays(*c)
  assert np.mean(outs[1] == alone) >= AGREE


def _folder(root, name, frames, mask):
  img_dir, ann_dir = root / 'JPEGImages' / name, root / 'Annotations' / name
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True)
  for i, f in enumerate(frames):
    Image.fromarray(f).save(img_dir / f'{i:05d}.jpg')
  im = Image.fromarray(mask, mode='P')
  im.putpalette(davis_palette())
  im.save(ann_dir / '00000.png')


@pytest.mark.slow
def test_eval_py_batch_clips_writes_the_same_masks(tmp_path):
  root = tmp_path / 'data'
  for n, (frames, masks) in enumerate(_clips((32, 48))):
    _folder(root, f'clip{n}', frames, masks[0])
  # A bad clip (its mask is not frame-sized) batched with clip0 and clip1 (the
  # frames have their size): it fails alone, the others are written.
  _folder(root, 'clip0x', random_frames(2, (32, 48), 9), np.ones((16, 24), np.uint8))
  outs = {}
  for b in (1, 3):
    out = tmp_path / f'out{b}'
    cmd = [sys.executable, str(REPO / 'eval.py'), '--config', str(REPO / 'configs/stcn.py'),
           f'--config.data.root={root}', f'--workdir={out}',
           '--config.network.key_backbone=resnet18', '--config.network.key_dim=16',
           '--config.network.value_dim=32', '--config.network.decoder_dims=(16,16,16)',
           '--config.inference.chunk=4', f'--config.inference.batch_clips={b}']
    # FAST_COMPILE: both runs compile alike; what is compared is batched against one by one.
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                       env=child_env())
    assert r.returncode == 1, r.stderr[-2000:]
    assert '3 clips, 15 frames' in r.stdout
    assert '1 clip(s) failed' in r.stderr and 'clip0x' in r.stderr
    assert 'annotation is 24x16 but frames are 48x32' in (out / 'clip0x.FAILED').read_text()
    assert not (out / 'clip0x').exists()
    outs[b] = {f'{c}/{p}': Image.open(out / c / p)
               for c in sorted(os.listdir(out)) if (out / c).is_dir()
               for p in sorted(os.listdir(out / c))}
  assert len(outs[1]) == 15 and outs[1].keys() == outs[3].keys()
  for name, png in outs[1].items():
    assert png.mode == outs[3][name].mode == 'P'
    assert np.mean(np.array(png) == np.array(outs[3][name])) >= AGREE, name
