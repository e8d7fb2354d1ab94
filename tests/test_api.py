"""The Python API: whole-clip segment and the streaming session agree."""

import functools

import numpy as np
import pytest

from helpers import random_frames, tiny_stcn
from memvos_jax import api
from memvos_jax.errors import InputError

# Slow as a whole: the tests share one compiled tiny segmenter (lru_cache), so
# whichever runs first pays ~30-50 s on 2 CPU cores (marking only that one
# moves the cost to the next); together ~45-100 s.
pytestmark = [pytest.mark.slow, pytest.mark.fast_compile]   # ours against ours

H, W = 40, 64


@functools.lru_cache(maxsize=None)
def _segmenter(chunk=1):
  model, variables = tiny_stcn((64, 64), 2)
  return api.Segmenter(model, variables, mem_every=2, memory_capacity=6, chunk=chunk)


def _video(t=9):
  frames = random_frames(t, (H, W), seed=1)
  m0 = np.zeros((H, W), np.uint8)
  m0[5:15, 5:25] = 4
  m5 = np.zeros((H, W), np.uint8)
  m5[20:35, 30:60] = 9
  return frames, {0: m0, 5: m5}


def test_stream_equals_segment_with_object_added_at_frame_5():
  frames, masks = _video()
  whole = _segmenter().segment(frames, masks)
  session = _segmenter().session((H, W), max_objects=2)
  streamed = np.stack([session.step(f, masks.get(i)) for i, f in enumerate(frames)])
  np.testing.assert_array_equal(whole, streamed)
  assert session.objects == [4, 9]
  assert not np.any(whole[:5] == 9) and np.array_equal(whole[5] == 9, masks[5] == 9)


def test_chunked_scan_equals_single_frame_steps():
  frames, masks = _video()
  np.testing.assert_array_equal(_segmenter(1).segment(frames, masks),
                                _segmenter(4).segment(frames, masks))


def test_session_rejects_bad_input():
  session = _segmenter().session((H, W), max_objects=1)
  frames, _ = _video(1)
  with pytest.raises(InputError, match='shape'):
    session.step(frames[0][:10])
  two = np.zeros((H, W), np.uint8)
  two[:5, :5], two[-5:, -5:] = 1, 2
  with pytest.raises(InputError, match='max_objects'):
    session.step(frames[0], two)


def test_stream_matches_eval_folder_run_with_object_added_at_frame_5(tmp_path):
  """What eval.py computes for a clip folder equals a stream with the same masks."""
  from PIL import Image
  from memvos_jax.data import video_folder
  from memvos_jax.inference.clip import ClipSegmenter
  frames, masks = _video()
  img_dir = tmp_path / 'JPEGImages' / 'clip'
  ann_dir = tmp_path / 'Annotations' / 'clip'
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True)
  for i, f in enumerate(frames):
    Image.fromarray(f).save(img_dir / f'{i:05d}.png')       # lossless frames
  for i, m in masks.items():
    im = Image.fromarray(m, mode='P')
    im.putpalette(video_folder.davis_palette())
    im.save(ann_dir / f'{i:05d}.png')
  seg = _segmenter()
  folder = ClipSegmenter(seg.clip.family, seg.model, seg.variables, mem_every=2,
                         memory_capacity=6, chunk=4)
  got = {}
  folder.segment(video_folder.find_clips(tmp_path, ['clip'])[0],
                 on_frame=lambda i, ids, probs: got.__setitem__(i, ids))
  session = seg.session((H, W), max_objects=2)
  streamed = [session.step(f, masks.get(i)) for i, f in enumerate(frames)]
  for i in range(len(frames)):
    np.testing.assert_array_equal(got[i], streamed[i])


def test_bundled_clip_stream_equals_segment():
  import pathlib
  from PIL import Image
  clip = pathlib.Path(__file__).resolve().parents[1] / 'examples' / 'bike_small'
  frames = np.stack([np.array(Image.open(p).convert('RGB'))
                     for p in sorted((clip / 'JPEGImages' / 'bike').glob('*.jpg'))])
  first = np.array(Image.open(clip / 'Annotations' / 'bike' / '00000.png'))
  seg = _segmenter()
  whole = seg.segment(frames, {0: first})
  session = seg.session(frames.shape[1:3], max_objects=2)
  np.testing.assert_array_equal(
      whole, np.stack([session.step(f, first if i == 0 else None) for i, f in enumerate(frames)]))
