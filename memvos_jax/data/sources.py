"""Random-access training sources: DAVIS / YouTube-VOS folders and static images.

A source is ``len(source)`` records with ``num_frames(i)`` and
``load(i, frame_indices, rng)`` -> (frames [T, H, W, 3] uint8, ids [T, H, W]
uint8). Video sources use only annotated frames (YouTube-VOS annotates every
5th frame; its frame folders then hold those frames). A static source turns
one image+mask into a pseudo-video by random affine warps (the official
stage 0). Folder problems raise ``InputError`` naming the folder, at
construction (before any compilation).

``VideoSource`` and ``StaticSource`` hold what every storage shares (resizing,
memoising, the static pseudo-video); the folder classes here and the
ArrayRecord ones of ``memvos_jax.data.tfds_vos.reader`` only list and decode,
so a clip is the same sample from either.
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


class VideoSource:
  """Base of the video sources: clips of annotated frames, read at ``short_side``.

  A subclass lists its clips (``__len__``, ``num_frames``, ``clip_name``) and
  decodes one frame at its native size (``_decode``); resizing, memoising and
  ``load`` are shared, so a clip reads the same from every storage (folders,
  ArrayRecord: ``memvos_jax.data.tfds_vos.reader``).
  """

  def __init__(self, name: str, short_side: int = 0):
    self.name, self.short_side = name, short_side
    self._cache = {}

  def __len__(self) -> int:
    raise NotImplementedError

  def num_frames(self, i: int) -> int:
    raise NotImplementedError

  def clip_name(self, i: int) -> str:
    raise NotImplementedError

  def _decode(self, i: int, frame_indices) -> list:
    """[(frame [H, W, 3] uint8, ids [H, W] uint8 of the frame's size)] at the native size."""
    raise NotImplementedError

  def _frames(self, i: int, frame_indices) -> list:
    """[(frame [h, w, 3], ids [h, w])] at ``short_side``; memoised when resized.

    Resized frames are small (240p: 0.3 MB), so a DAVIS-sized source is kept
    in memory after its first epoch and the loader stops decoding JPEGs.
    """
    out = {j: self._cache.get((i, j)) for j in frame_indices}
    missing = sorted({j for j, hit in out.items() if hit is None})
    for j, (image, label) in zip(missing, self._decode(i, missing) if missing else ()):
      size = video_folder.processing_size(image.shape[:2], self.short_side)
      out[j] = (video_folder.resize_frames(image[None], size)[0],
                video_folder.resize_ids(label, size))
      if self.short_side:
        self._cache[(i, j)] = out[j]
    return [out[j] for j in frame_indices]

  def _frame(self, i: int, j: int):
    """(frame [h, w, 3], ids [h, w]) of clip ``i``'s frame ``j`` at ``short_side``."""
    return self._frames(i, [j])[0]

  def load(self, i: int, frame_indices, rng=None):
    pairs = self._frames(i, list(frame_indices))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


class VideoFolderSource(VideoSource):
  """Clips of a DAVIS (``JPEGImages/480p``) or YouTube-VOS (``JPEGImages``) root.

  ``split``: a DAVIS ``ImageSets/2017|2016/<split>.txt`` restricts the clips
  when the file exists (the official DAVIS reading); ``exclude``: clip names
  held out (validation); ``short_side``: frames and masks are resized to this
  shorter side when read (0: native), before the random crop.
  """

  def __init__(self, root, name: str, min_frames: int = 3, split: str = '',
               exclude=(), short_side: int = 0):
    super().__init__(name, short_side)
    self.clips = []
    for clip in annotated_clips(root, split_names(root, split), exclude):
      if len(clip[1]) >= min_frames:   # official: >= 3 frames
        self.clips.append(clip)
    if not self.clips:
      raise InputError(root, f'{name}: no clip with >= {min_frames} annotated frames')

  def __len__(self) -> int:
    return len(self.clips)

  def num_frames(self, i: int) -> int:
    return len(self.clips[i][1])

  def clip_name(self, i: int) -> str:
    return self.clips[i][0]

  def _decode(self, i: int, frame_indices) -> list:
    _, frames, anns = self.clips[i]
    return [read_pair(frames[j], anns[j]) for j in frame_indices]


def annotated_clips(root, names=None, exclude=()) -> list:
  """[(name, frame paths, annotation paths)] of the annotated frames of each clip, by name.

  The clips ``names`` (all when None), less ``exclude``.
  """
  if names is not None:
    names = [n for n in names if n not in set(exclude)]
    clips = video_folder.find_clips(root, names) if names else []
  else:
    clips = [c for c in video_folder.find_clips(root) if c.name not in set(exclude)]
  out = []
  for clip in clips:
    idx = sorted(clip.annotation_paths)
    out.append((clip.name, [clip.frame_paths[i] for i in idx],
                [clip.annotation_paths[i] for i in idx]))
  return out


def read_pair(frame_path, annotation_path):
  """(frame [H, W, 3] uint8, ids [H, W] uint8) of one annotated frame, as training reads it.

  The ids are ``read_ids`` of the annotation fitted to the frame's size
  (``video_folder.fit_annotation``).
  """
  image = video_folder.read_frame(frame_path)
  return image, fitted_ids(annotation_path, image.shape[:2])


def fitted_ids(annotation_path, size) -> np.ndarray:
  """[H, W] uint8 ids of an annotation (``read_ids``) fitted to the frame ``size`` (H, W)."""
  return video_folder.fit_annotation(annotation_path, read_ids(annotation_path), size)


def read_ids(path) -> np.ndarray:
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


class StaticSource:
  """Base of the static sources: image+mask pairs turned into pseudo-videos.

  A subclass lists its pairs (``__len__``) and decodes one (``_pair``); the
  official single-object reading and the random affine pseudo-video are shared.
  """

  def __init__(self, name: str, num_frames: int = 3, out_size: int = 384):
    self.name, self.frames, self.out_size = name, num_frames, out_size

  def __len__(self) -> int:
    raise NotImplementedError

  def num_frames(self, i: int) -> int:
    return self.frames

  def _pair(self, i: int):
    """(image [H, W, 3] uint8, ids [H, W] uint8 as ``read_ids`` reads the mask, where)."""
    raise NotImplementedError

  def load(self, i: int, frame_indices, rng):
    image, ids, where = self._pair(i)
    label = (ids > 0).astype(np.uint8)    # single object (official)
    if label.shape != image.shape[:2]:
      raise InputError(where, 'mask and image sizes differ')
    return augment.static_clip(rng, image, label, self.out_size, len(frame_indices))


def image_mask_pairs(root) -> list:
  """[(XXX.jpg, XXX.png)] under ``root`` (any depth), sorted by path."""
  root = pathlib.Path(root)
  pairs = []
  for jpg in sorted(root.rglob('*')):
    if jpg.suffix.lower() in ('.jpg', '.jpeg') and jpg.with_suffix('.png').is_file():
      pairs.append((jpg, jpg.with_suffix('.png')))
  return pairs


class StaticFolderSource(StaticSource):
  """Image+mask pairs (``XXX.jpg`` + ``XXX.png``, any depth under ``root``)."""

  def __init__(self, root, name: str = 'static', num_frames: int = 3, out_size: int = 384):
    super().__init__(name, num_frames, out_size)
    root = pathlib.Path(root)
    if not root.is_dir():
      raise InputError(root, f'{name}: static data folder does not exist')
    self.pairs = image_mask_pairs(root)
    if not self.pairs:
      raise InputError(root, f'{name}: no image+mask pairs (XXX.jpg with XXX.png)')

  def __len__(self) -> int:
    return len(self.pairs)

  def _pair(self, i: int):
    jpg, png = self.pairs[i]
    return video_folder.read_frame(jpg), read_ids(png), png
