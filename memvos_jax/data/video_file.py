"""Decodes video files (mp4/webm/avi/mov/mkv/gif) lazily, in chunks of frames.

Backend: imageio v3 with its PyAV plugin (the `av` wheel bundles FFmpeg). The
whole video is never held in memory: `VideoReader` keeps one decoder open while
iterating and yields (start_index, frames [n <= chunk, H, W, 3] uint8), the
same protocol as `video_folder.FrameReader`, with one chunk prefetched by a
background thread. Every problem with the file raises `InputError(path, ...)`.
"""

import concurrent.futures
import math
import pathlib
from typing import Iterator

import av
import imageio.v3 as iio
import numpy as np
from PIL import Image

from memvos_jax.errors import InputError

VIDEO_SUFFIXES = ('.mp4', '.m4v', '.webm', '.avi', '.mov', '.mkv', '.gif')
DEFAULT_FPS = 24.0  # When the container gives no usable frame rate.
# Boxes an mp4/mov file can start with (ISO base media / QuickTime).
_FIRST_BOXES = ('ftyp', 'moov', 'mdat', 'free', 'skip', 'wide', 'pnot', 'uuid')


def is_video_file(path) -> bool:
  """Whether `path` names a video file, judged by its extension only."""
  return pathlib.Path(path).suffix.lower() in VIDEO_SUFFIXES


def _reason(e: BaseException) -> str:
  """One line; FFmpeg errors without the file name (the caller prints it)."""
  if isinstance(e, av.FFmpegError) and e.strerror:
    return e.strerror
  text = ' '.join(str(e).split())
  return f'{type(e).__name__}: {text}' if text else type(e).__name__


def _container_problem(path: pathlib.Path) -> str | None:
  """Why an mp4/mov file cannot be opened, judged from its top-level boxes, or None.

  A file cut short (an interrupted download, copy or recording) ends inside a
  box, or lacks the ``moov`` index that the writer puts at the end.
  """
  if path.suffix.lower() not in ('.mp4', '.m4v', '.mov'):
    return None
  try:
    total = path.stat().st_size
    boxes = []
    with open(path, 'rb') as f:
      offset = 0
      while offset + 8 <= total:
        f.seek(offset)
        head = f.read(16)
        size, kind = int.from_bytes(head[:4], 'big'), head[4:8].decode('latin-1')
        if size == 1 and len(head) == 16:
          size = int.from_bytes(head[8:16], 'big')
        elif size == 0:
          size = total - offset
        if size < 8 or not kind.isprintable() or (not boxes and kind not in _FIRST_BOXES):
          return None          # not an ISO media file after all: let FFmpeg say why
        boxes.append(kind)
        if offset + size > total:
          return (f'the file ends inside its {kind!r} box ({total - offset} of {size} bytes), '
                  'so it was cut short (an interrupted download, copy or recording?)')
        offset += size
  except OSError:
    return None
  if boxes and boxes[0] == 'ftyp' and 'moov' not in boxes:
    return ('the file has no index (moov box), so it was cut short or is still being '
            'written (an interrupted download, copy or recording?)')
  return None


def _decode_error(path: pathlib.Path, e: BaseException) -> InputError:
  """No frame could be decoded: FFmpeg's reason, and the container's if it is cut."""
  cut = _container_problem(path)
  why = f'; {cut}' if cut else ''
  return InputError(path, f'cannot decode video: {_reason(e)} (no frame decoded){why}')


def _probe(path: pathlib.Path) -> tuple[int, float, tuple[int, int]]:
  """(frame count from the header or 0, fps or 0, (H, W) of the first frame)."""
  try:
    with av.open(str(path)) as container:
      if not container.streams.video:
        raise InputError(path, 'cannot decode video: the file has no video '
                         'stream')
      stream = container.streams.video[0]
      header_frames = int(stream.frames or 0)
      rate = stream.guessed_rate or stream.average_rate
      first = next(container.decode(stream), None)
  except InputError:
    raise
  except Exception as e:  # PyAV raises many types for bad files.
    raise _decode_error(path, e) from None
  if first is None:
    raise InputError(path, 'cannot decode video: it has no frames')
  fps = float(rate) if rate else 0.0
  return header_frames, fps, (int(first.height), int(first.width))


def _count_frames(path: pathlib.Path) -> int:
  """Frames in the first video stream, by a streaming decode (no RGB copies)."""
  try:
    with av.open(str(path)) as container:
      stream = container.streams.video[0]
      stream.thread_type = 'AUTO'
      return sum(1 for _ in container.decode(stream))
  except Exception as e:
    raise _decode_error(path, e) from None


def _open(path: pathlib.Path):
  """An imageio PyAV plugin reading `path`; InputError if it cannot."""
  try:
    return iio.imopen(path, 'r', plugin='pyav')
  except Exception as e:
    raise _decode_error(path, e) from None


class VideoReader:
  """Streams the frames of a video file in chunks, resized to `size` if given.

  Attributes: path, fps (float), native_size (H, W) as decoded, frame_size
  (H, W) as yielded, num_frames. The frame count comes from the container
  header when it has one (mp4/mov/avi), else from a streaming decoding pass
  (webm/mkv/gif); iterating checks that the decoded count matches it.
  """

  def __init__(self, path, chunk: int, size: tuple[int, int] | None = None):
    if chunk < 1:
      raise ValueError(f'chunk must be >= 1, got {chunk}')
    self.path = pathlib.Path(path)
    self.chunk = int(chunk)
    if not self.path.exists():
      raise InputError(self.path, 'cannot decode video: file does not exist')
    if not self.path.is_file():
      raise InputError(self.path, 'cannot decode video: not a file')

    header_frames, fps, self.native_size = _probe(self.path)  # (H, W)
    self.fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    if size is None:
      self.frame_size = self.native_size
    else:
      self.frame_size = (int(size[0]), int(size[1]))
      if min(self.frame_size) < 1:
        raise ValueError(f'size must be positive, got {size}')
    self.num_frames = header_frames or _count_frames(self.path)
    if self.num_frames < 1:
      raise InputError(self.path, 'cannot decode video: it has no frames')

  def __len__(self) -> int:
    return math.ceil(self.num_frames / self.chunk)

  def _resize(self, frame: np.ndarray) -> np.ndarray:
    """[h, w, 3] -> [H, W, 3] uint8 (PIL bilinear) unless already that size."""
    h, w = self.frame_size
    if frame.shape[:2] == (h, w):
      return frame
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))

  def _chunks(self) -> Iterator[tuple[int, np.ndarray]]:
    """Decodes chunk after chunk; runs on the prefetching thread only."""
    h, w = self.frame_size
    nh, nw = self.native_size
    plugin = _open(self.path)
    try:
      start, index = 0, 0
      out = np.empty((min(self.chunk, self.num_frames), h, w, 3), np.uint8)
      frames = plugin.iter(format='rgb24', thread_type='FRAME')
      while True:
        try:
          frame = next(frames, None)  # [nh, nw, 3], a view into PyAV's buffer.
        except Exception as e:
          reached = f'frame {index - 1} was the last decoded' if index else 'no frame decoded'
          raise InputError(self.path, f'cannot decode video at frame {index} ({reached}): '
                           f'{_reason(e)}') from None
        if frame is None:
          break
        if frame.shape[:2] != (nh, nw):
          raise InputError(self.path, f'frame {index} is {frame.shape[1]}x'
                           f'{frame.shape[0]} but frame 0 is {nw}x{nh}')
        if index >= self.num_frames:
          raise InputError(self.path, 'cannot decode video: it has more frames '
                           f'than the {self.num_frames} its header says; '
                           're-encode it (e.g. with ffmpeg)')
        out[index - start] = self._resize(frame)
        index += 1
        if index - start == len(out):
          yield start, out
          start = index
          out = np.empty((min(self.chunk, self.num_frames - index), h, w, 3),
                         np.uint8)
      if index != self.num_frames:
        raise InputError(self.path, f'cannot decode video: it ends after frame {index - 1} '
                         f'({index} of the {self.num_frames} frames its header announces), '
                         'so it was probably cut short; re-download or re-encode it')
    finally:
      plugin.close()

  def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (start, frames [n <= chunk, H, W, 3] uint8), one chunk ahead."""
    gen = self._chunks()
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=f'video-{self.path.name}')
    try:
      pending = pool.submit(next, gen, None)
      while True:
        item = pending.result()
        pending = None  # Drop the future's reference to the chunk.
        if item is None:
          break
        pending = pool.submit(next, gen, None)
        yield item
        del item
    finally:
      if pending is not None:
        pending.cancel()
        concurrent.futures.wait([pending])
      pool.submit(gen.close).result()  # Close the decoder on its own thread.
      pool.shutdown(wait=True)

