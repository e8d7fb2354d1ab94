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


def split_names(root, split: str) -> list[str] | None:
  """Clip names of ``ROOT/ImageSets/<2017|2016>/<split>.txt`` (DAVIS), or None if absent."""
  if not split:
    return None
  for year in ('2017', '2016'):
    path = pathlib.Path(root) / 'ImageSets' / year / f'{split}.txt'
    if path.is_file():
      names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
      if not names:
        raise InputError(path, 'split file lists no clip')
      return names
  return None


class VideoFolderSource:
  """Clips of a DAVIS (``JPEGImages/480p``) or YouTube-VOS (``JPEGImages``) root.

  ``split``: a DAVIS ``ImageSets/2017|2016/<split>.txt`` restricts the clips
  when the file exists (the official DAVIS reading); ``exclude``: clip names
  held out (validation); ``short_side``: frames and masks are resized to this
  shorter side when read (0: native), before the random crop.
  """

  def __init__(self, root, name: str, min_frames: int = 3, split: str = '',
               exclude=(), short_side: int = 0):
    self.name, self.short_side = name, short_side
    self._cache = {}
    names = split_names(root, split)
    if names is not None:
      names = [n for n in names if n not in set(exclude)]
      clips = video_folder.find_clips(root, names) if names else []
    else:
      clips = [c for c in video_folder.find_clips(root) if c.name not in set(exclude)]
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

  def _frame(self, i: int, j: int):
    """(frame [H, W, 3], ids [H, W]) at ``short_side``; memoised when resized.

    Resized frames are small (240p: 0.3 MB), so a DAVIS-sized source is kept
    in memory after its first epoch and the loader stops decoding JPEGs.
    """
    key = (i, j)
    hit = self._cache.get(key)
    if hit is not None:
      return hit
    _, frames, anns = self.clips[i]
    image = video_folder.read_frame(frames[j])
    label = video_folder.fit_annotation(anns[j], _read_ids(anns[j]), image.shape[:2])
    size = video_folder.processing_size(image.shape[:2], self.short_side)
    out = (video_folder.resize_frames(image[None], size)[0], video_folder.resize_ids(label, size))
    if self.short_side:
      self._cache[key] = out
    return out

  def load(self, i: int, frame_indices, rng=None):
    pairs = [self._frame(i, j) for j in frame_indices]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _read_ids(path) -> np.ndarray:
  """An annotation as [H, W] uint8 ids.

  Palette indices (a 0/255-only mask is one object, id 1); greyscale > 127 =
  object 1 unless the values are small ids (<= 16).
  """
  try:
    with Image.open(path) as im:
      if im.mode == 'P':
        ids = np.asarray(im, np.uint8)
        if ids.max(initial=0) == 255 and not np.isin(ids, (0, 255), invert=True).any():
          return (ids == 255).astype(np.uint8)   # a binary 0/255 mask: one object
        return ids
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
