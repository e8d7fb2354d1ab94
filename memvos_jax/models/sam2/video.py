"""Frames of one video for the SAM 2 predictor (``init_state``'s ``video_path``).

``load_video(video_path, image_size)`` takes what the official
``sam2.utils.misc.load_video_frames`` takes, plus arrays:

  * a folder of JPEG frames (``<frame_index>.jpg``; other names sort by name),
    read lazily, a few frames cached;
  * a video file (.mp4 and the other ``video_file.VIDEO_SUFFIXES``), decoded
    once with PyAV (``memvos_jax.data.video_file``); frames larger than the
    model input are stored already resized;
  * an array [T, H, W, 3] uint8.

Every frame reaches the network as the official JPEG loader makes it: PIL RGB
``.resize((S, S))`` with PIL's default (bicubic) filter. The official video
file loader resizes inside decord instead, so on video files the two
implementations differ by resampling noise.
"""

import functools
import os
from typing import Callable

import numpy as np
from PIL import Image

from memvos_jax.errors import InputError

JPEG_SUFFIXES = ('.jpg', '.jpeg')
_CACHED_FRAMES = 8


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
  """[H, W, 3] uint8 -> [S, S, 3] uint8 with PIL's default filter, as the official loader."""
  return np.asarray(Image.fromarray(frame).convert('RGB').resize((size, size)))


def _jpeg_folder(path: str, size: int):
  names = [n for n in os.listdir(path) if os.path.splitext(n)[-1].lower() in JPEG_SUFFIXES]
  if not names:
    raise InputError(path, 'no JPEG frames in the folder')
  try:
    names.sort(key=lambda n: int(os.path.splitext(n)[0]))
  except ValueError:
    names.sort()
  files = [os.path.join(path, n) for n in names]
  with Image.open(files[0]) as im:
    w, h = im.size

  @functools.lru_cache(maxsize=_CACHED_FRAMES)
  def load(i):
    try:
      with Image.open(files[i]) as im:
        return np.asarray(im.convert('RGB').resize((size, size)))
    except OSError as e:
      raise InputError(files[i], f'unreadable image ({e})') from e
  return load, len(files), (h, w)


def _video_file(path: str, size: int):
  """Decodes the whole file; frames above S x S pixels are kept at S x S (same result)."""
  reader = _video_module(path).VideoReader(path, chunk=16)
  h, w = reader.native_size
  shrink = h * w > size * size
  frames = []
  for _, chunk in reader:
    frames.extend(resize_frame(f, size) if shrink else f.copy() for f in chunk)
  return _array(np.stack(frames), size, (h, w))


def _video_module(path: str):
  try:
    from memvos_jax.data import video_file
  except ImportError as e:
    raise InputError(path, f'reading video files needs PyAV (pip install av): {e}') from e
  return video_file


def _array(frames, size: int, video_hw=None):
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
    raise InputError('<array>', f'frames must be [T, H, W, 3] uint8 with T >= 1, got '
                     f'{frames.shape} {frames.dtype}')
  load = functools.lru_cache(maxsize=_CACHED_FRAMES)(lambda i: resize_frame(frames[i], size))
  return load, int(frames.shape[0]), tuple(int(v) for v in (video_hw or frames.shape[1:3]))


def load_video(video_path, image_size: int) -> tuple[Callable[[int], np.ndarray], int,
                                                      tuple[int, int]]:
  """(load_frame, num_frames, (H, W)): ``load_frame(i)`` is frame i as [S, S, 3] uint8."""
  if not isinstance(video_path, (str, os.PathLike)):
    return _array(video_path, image_size)
  path = os.fspath(video_path)
  if os.path.isdir(path):
    return _jpeg_folder(path, image_size)
  if not os.path.exists(path):
    raise InputError(path, 'no such folder or video file')
  if not _video_module(path).is_video_file(path):
    raise InputError(path, 'video_path must be a folder of JPEG frames, a video file (.mp4, '
                     '.webm, .mov, ...) or an array [T, H, W, 3] uint8')
  return _video_file(path, image_size)
