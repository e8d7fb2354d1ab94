"""Pictures of segmentation results: overlays, mp4/GIF writers, contact sheets.

`overlay` blends object pixels with their palette colour and outlines them;
`OverlayVideoWriter` streams frames into an h264 mp4 (imageio v3 + PyAV);
`GifWriter` keeps a bounded, evenly subsampled, downscaled set of frames and
writes a GIF that plays at the video's speed on close; `contact_sheet` tiles a
few frames into one image, optionally labelled (e.g. with frame numbers);
`object_stats` gives each object's area and bounding box.
"""

import math
import pathlib
from typing import Sequence

import av
import imageio.v3 as iio
import numpy as np
from PIL import Image
from PIL import ImageDraw


def _colours(palette: Sequence[int]) -> np.ndarray:
  """768 ints (shorter is zero-padded) -> [256, 3] float32 RGB."""
  pal = np.zeros(768, np.float32)
  values = np.asarray(list(palette)[:768], np.float32)
  pal[:len(values)] = values
  return pal.reshape(256, 3)


def _contour(ids: np.ndarray) -> np.ndarray:
  """[H, W] uint8 -> [H, W] bool: object pixels with a 4-neighbour of another id.

  The contour lies inside each object (1 px; 2 px in total where two objects
  touch), so background pixels are never part of it.
  """
  p = np.pad(ids, 1, mode='edge')  # [H + 2, W + 2]; image borders are no edge.
  edge = ((p[1:-1, 1:-1] != p[:-2, 1:-1]) | (p[1:-1, 1:-1] != p[2:, 1:-1])
          | (p[1:-1, 1:-1] != p[1:-1, :-2]) | (p[1:-1, 1:-1] != p[1:-1, 2:]))
  return edge & (ids > 0)


def overlay(frame: np.ndarray, ids: np.ndarray, palette: Sequence[int],
            alpha: float = 0.5) -> np.ndarray:
  """Object pixels blended with their palette colour, outlined in that colour.

  frame: [H, W, 3] uint8; ids: [H, W] uint8 (0 = background, left untouched);
  palette: 768 ints (256 RGB triplets). Returns [H, W, 3] uint8.
  """
  frame = np.asarray(frame, np.uint8)
  ids = np.asarray(ids)
  if ids.shape != frame.shape[:2]:
    raise ValueError(f'ids {ids.shape} and frame {frame.shape} differ in size')
  colour = _colours(palette)[ids.astype(np.uint8)]  # [H, W, 3]
  out = frame.copy()
  obj = ids > 0  # [H, W]
  blended = (1.0 - alpha) * frame[obj] + alpha * colour[obj]  # [N, 3]
  out[obj] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
  edge = _contour(ids)
  out[edge] = colour[edge].astype(np.uint8)
  return out


def object_stats(ids: np.ndarray) -> dict[int, dict]:
  """{id: {"area": pixels, "bbox": [x0, y0, x1, y1]}} for ids > 0 present.

  ids: [H, W] integer map. The bbox is in inclusive pixel coordinates.
  """
  ids = np.asarray(ids)
  out = {}
  for k in np.unique(ids).tolist():
    if k <= 0:
      continue
    mask = ids == k  # [H, W]
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    out[int(k)] = {'area': int(mask.sum()),
                   'bbox': [int(cols[0]), int(rows[0]),
                            int(cols[-1]), int(rows[-1])]}
  return out


def _downscale(frame: np.ndarray, max_side: int) -> np.ndarray:
  """[H, W, 3] -> [h, w, 3] with max(h, w) <= max_side (never upscaled)."""
  h, w = frame.shape[:2]
  scale = max_side / max(h, w)
  if scale >= 1:
    return np.asarray(frame, np.uint8)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))  # (w, h)
  return np.asarray(Image.fromarray(np.asarray(frame, np.uint8)).resize(
      size, Image.BILINEAR))


def _label(tile: np.ndarray, text: str) -> np.ndarray:
  """``text`` in white on a black box at the top-left corner of ``tile`` [h, w, 3]."""
  im = Image.fromarray(tile)
  draw = ImageDraw.Draw(im)
  _, _, x1, y1 = draw.textbbox((3, 2), text)   # PIL's default font
  draw.rectangle((0, 0, x1 + 2, y1 + 2), fill=(0, 0, 0))
  draw.text((3, 2), text, fill=(255, 255, 255))
  return np.asarray(im)


def contact_sheet(frames: Sequence[np.ndarray], cols: int = 4,
                  max_side: int = 240, gap: int = 2,
                  labels: Sequence[str] | None = None) -> np.ndarray:
  """Tiles frames ([H, W, 3] each) row by row into one [H', W', 3] uint8 image.

  Each frame is downscaled so its longer side is <= max_side; cells are as
  large as the largest frame, separated by `gap` black pixels. With n frames,
  c = min(cols, n) and r = ceil(n / c): H' = r * cell_h + (r - 1) * gap and
  W' = c * cell_w + (c - 1) * gap. `labels` (one per frame, e.g. "frame 12")
  are drawn at each tile's top-left corner.
  """
  if not frames:
    raise ValueError('contact_sheet needs at least one frame')
  if labels is not None and len(labels) != len(frames):
    raise ValueError(f'{len(labels)} labels for {len(frames)} frames')
  small = [_downscale(f, max_side) for f in frames]
  if labels is not None:
    small = [_label(f, str(t)) for f, t in zip(small, labels)]
  ch = max(f.shape[0] for f in small)
  cw = max(f.shape[1] for f in small)
  c = max(1, min(cols, len(small)))
  r = math.ceil(len(small) / c)
  sheet = np.zeros((r * ch + (r - 1) * gap, c * cw + (c - 1) * gap, 3),
                   np.uint8)
  for i, f in enumerate(small):
    y, x = (i // c) * (ch + gap), (i % c) * (cw + gap)
    sheet[y:y + f.shape[0], x:x + f.shape[1]] = f
  return sheet


class OverlayVideoWriter:
  """Streams [H, W, 3] uint8 frames into an mp4 (h264, yuv420p; mpeg4 if the
  FFmpeg build lacks libx264). A context manager; nothing is buffered here.

  yuv420p needs even sizes: an odd height or width is padded by repeating the
  last row or column, so 47x63 frames give a 48x64 video. All frames must have
  the size of the first. The file is created by the first `write`.
  """

  def __init__(self, path, fps: float):
    if not fps > 0:
      raise ValueError(f'fps must be positive, got {fps}')
    self.path = pathlib.Path(path)
    self.fps = float(fps)
    self.size = None  # (H, W) of the input frames, set by the first write.
    self.frames_written = 0
    self._file = None

  def write(self, frame: np.ndarray) -> None:
    frame = np.asarray(frame, np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
      raise ValueError(f'frame must be [H, W, 3], got shape {frame.shape}')
    if self._file is None:
      if self.frames_written:
        raise ValueError(f'{self.path}: writer is closed')
      self.size = frame.shape[:2]
      self.path.parent.mkdir(parents=True, exist_ok=True)
      codec = 'libx264' if 'libx264' in av.codecs_available else 'mpeg4'
      self._file = iio.imopen(self.path, 'w', plugin='pyav')
      self._file.init_video_stream(codec, fps=self.fps, pixel_format='yuv420p')
    elif frame.shape[:2] != self.size:
      raise ValueError(f'frame is {frame.shape[1]}x{frame.shape[0]} but the '
                       f'first frame was {self.size[1]}x{self.size[0]}')
    h, w = self.size
    if h % 2 or w % 2:
      frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode='edge')
    self._file.write_frame(frame)  # [H + H % 2, W + W % 2, 3]
    self.frames_written += 1

  def close(self) -> None:
    """Flushes the encoder and closes the file (idempotent)."""
    if self._file is not None:
      f, self._file = self._file, None
      f.close()

  def __enter__(self) -> 'OverlayVideoWriter':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class GifWriter:
  """Collects a bounded preview of a video and writes it as a GIF on close.

  The GIF plays at the video's speed (`fps`, taken as at least MIN_FPS). Of
  `num_frames` written frames every k-th is kept, k = max(ceil(num_frames /
  max_frames), ceil(fps / MAX_FPS)), so at most `max_frames` frames (each
  downscaled to a longer side <= max_side) are held and at most MAX_FPS are
  shown per second (viewers slow faster GIFs down). Each kept frame is shown
  for k / fps seconds. Pillow merges identical consecutive frames, so the GIF
  may hold fewer frames.
  """

  MIN_FPS, MAX_FPS = 1.0, 30.0

  def __init__(self, path, num_frames: int, max_frames: int = 60,
               max_side: int = 320, fps: float = 10.0):
    if max_frames < 1 or max_side < 1 or not fps > 0:
      raise ValueError('max_frames, max_side and fps must be positive')
    self.path = pathlib.Path(path)
    self.max_frames = int(max_frames)
    self.max_side = int(max_side)
    fps = max(float(fps), self.MIN_FPS)
    self.every = max(1, math.ceil(max(int(num_frames), 1) / self.max_frames),
                     math.ceil(fps / self.MAX_FPS - 1e-9))
    self.duration_ms = max(10, round(1000 * self.every / fps))
    self._seen = 0
    self._kept: list[Image.Image] = []

  def write(self, frame: np.ndarray) -> None:
    """Takes one [H, W, 3] uint8 frame; keeps it if it falls on the stride."""
    i, self._seen = self._seen, self._seen + 1
    if i % self.every or len(self._kept) >= self.max_frames:
      return
    self._kept.append(Image.fromarray(_downscale(frame, self.max_side)))

  def close(self) -> None:
    """Writes the GIF (nothing if no frame was written) and frees the frames."""
    kept, self._kept = self._kept, []
    if not kept:
      return
    self.path.parent.mkdir(parents=True, exist_ok=True)
    kept[0].save(self.path, format='GIF', save_all=True,
                 append_images=kept[1:], duration=self.duration_ms, loop=0)

  def __enter__(self) -> 'GifWriter':
    return self

  def __exit__(self, *exc) -> None:
    self.close()
