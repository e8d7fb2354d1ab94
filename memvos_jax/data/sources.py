"""Random-access training sources: DAVIS / YouTube-VOS folders and static images.

A source is ``len(source)`` records with ``num_frames(i)`` and
``load(i, frame_indices, rng)`` -> (frames [T, H, W, 3] uint8, ids [T, H, W]
uint8). Video sources use only annotated frames (YouTube-VOS annotates every
5th frame; its frame folders then hold those frames). A static source turns
one image+mask into a pseudo-video by random affine warps (the official
stage 0). Folder problems raise ``InputError`` naming the folder, at
construction (before any compilation).
"""

import pathlib

import numpy as np
from PIL import Image

from memvos_jax.data import augment, video_folder
from memvos_jax.errors import InputError


class VideoFolderSource:
  """Clips of a DAVIS (``JPEGImages/480p``) or YouTube-VOS (``JPEGImages``) root."""

  def __init__(self, root, name: str, min_frames: int = 3):
    self.name = name
    clips = video_folder.find_clips(root)
    self.clips = []
    for clip in clips:
      if len(clip.annotation_paths) >= min_frames:   # official: >= 3 frames
        idx = sorted(clip.annotation_paths)
        self.clips.append((clip.name, [clip.frame_paths[i] for i in idx],
                           [clip.annotation_paths[i] for i in idx]))
    if not self.clips:
      raise InputError(root, f'{name}: no clip with >= {min_frames} annotated frames')

  def __len__(self) -> int:
    return len(self.clips)

  def num_frames(self, i: int) -> int:
    return len(self.clips[i][1])

  def load(self, i: int, frame_indices, rng=None):
    _, frames, anns = self.clips[i]
    images = np.stack([video_folder.read_frame(frames[j]) for j in frame_indices])
    labels = np.stack([_read_ids(anns[j]) for j in frame_indices])
    if labels.shape[1:] != images.shape[1:3]:
      raise InputError(anns[frame_indices[0]], 'annotation and frame sizes differ')
    return images, labels


def _read_ids(path) -> np.ndarray:
  """An annotation as [H, W] uint8 ids (palette indices; greyscale > 127 = object 1)."""
  try:
    with Image.open(path) as im:
      if im.mode == 'P':
        return np.asarray(im, np.uint8)
      grey = np.asarray(im.convert('L'))
  except Exception as e:  # PIL raises many types for broken files
    raise InputError(path, f'cannot read annotation: {e}') from e
  if grey.max(initial=0) <= 16:    # ids stored as a greyscale image
    return grey.astype(np.uint8)
  return (grey > 127).astype(np.uint8)


class StaticFolderSource:
  """Image+mask pairs (``XXX.jpg`` + ``XXX.png``, any depth under ``root``)."""

  def __init__(self, root, name: str = 'static', num_frames: int = 3, out_size: int = 384):
    self.name, self.frames, self.out_size = name, num_frames, out_size
    root = pathlib.Path(root)
    if not root.is_dir():
      raise InputError(root, f'{name}: static data folder does not exist')
    self.pairs = []
    for jpg in sorted(root.rglob('*')):
      if jpg.suffix.lower() in ('.jpg', '.jpeg') and jpg.with_suffix('.png').is_file():
        self.pairs.append((jpg, jpg.with_suffix('.png')))
    if not self.pairs:
      raise InputError(root, f'{name}: no image+mask pairs (XXX.jpg with XXX.png)')

  def __len__(self) -> int:
    return len(self.pairs)

  def num_frames(self, i: int) -> int:
    return self.frames

  def load(self, i: int, frame_indices, rng):
    jpg, png = self.pairs[i]
    image = video_folder.read_frame(jpg)
    label = (_read_ids(png) > 0).astype(np.uint8)    # single object (official)
    if label.shape != image.shape[:2]:
      raise InputError(png, 'mask and image sizes differ')
    return augment.static_clip(rng, image, label, self.out_size, len(frame_indices))
