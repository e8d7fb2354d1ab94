"""Pasted pseudo-videos (data/paste.py): objects cut from training frames over other frames."""

import numpy as np

from memvos_jax.data.paste import PasteSource


class _Clips:
  """A stand-in video source: clip c, frame j -> a flat colour with square objects."""

  def __init__(self, n_clips=3, n_frames=6, objects=2, size=(60, 80)):
    self.n, self.t, self.k, self.size = n_clips, n_frames, objects, size
    self.read = []

  def __len__(self):
    return self.n

  def num_frames(self, c):
    return self.t

  def _frame(self, c, j):
    self.read.append((c, j))
    h, w = self.size
    image = np.full((h, w, 3), 40 * c, np.uint8)
    ids = np.zeros((h, w), np.uint8)
    for k in range(1, self.k + 1):
      ids[10 * k:10 * k + 12, 15 * k:15 * k + 14] = k
      image[ids == k] = (200, 30 * k, 255 - 40 * k)
    return image, ids


def test_pasted_clip_shapes_ids_and_determinism():
  pool = _Clips()
  src = PasteSource([pool], num_clips=5, length=20, out_size=48, max_objects=3)
  assert len(src) == 5 and src.num_frames(0) == 20
  frames, labels = src.load(0, [0, 4, 9], np.random.default_rng(7))
  assert frames.shape == (3, 48, 48, 3) and frames.dtype == np.uint8
  assert labels.shape == (3, 48, 48) and labels.dtype == np.uint8
  assert set(np.unique(labels)) <= set(range(4))
  assert (labels[0] > 0).any()
  again = src.load(0, [0, 4, 9], np.random.default_rng(7))
  np.testing.assert_array_equal(again[0], frames)
  np.testing.assert_array_equal(again[1], labels)
  other = src.load(0, [0, 4, 9], np.random.default_rng(8))
  assert not np.array_equal(other[0], frames)


def test_objects_move_smoothly_over_the_virtual_frames():
  src = PasteSource([_Clips(objects=1)], num_clips=1, length=20, out_size=64, max_objects=1)
  _, labels = src.load(0, list(range(20)), np.random.default_rng(3))
  centres = np.array([np.argwhere(l == 1).mean(0) for l in labels if (l == 1).any()])
  steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
  assert len(centres) >= 10 and steps.max() < 8       # a few pixels a frame, no jumps
