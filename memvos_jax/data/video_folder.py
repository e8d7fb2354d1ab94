"""Reads video-object-segmentation clips from a folder; writes predicted masks.

Two layouts are accepted (detected from the root):
  DAVIS:   ROOT/JPEGImages/480p/<clip>/*.jpg, ROOT/Annotations/480p/<clip>/*.png
  generic: ROOT/JPEGImages/<clip>/*.jpg,      ROOT/Annotations/<clip>/*.png
  (YouTube-VOS uses the generic layout.)

`find_clips` only lists files (cheap). `read_annotations` loads the label maps
of one clip, `FrameReader` streams its frames in chunks with one chunk
prefetched by a background thread, and `write_mask` writes an indexed PNG
atomically. Every problem with the input raises `InputError(path, problem)`.
"""

import concurrent.futures
import dataclasses
import functools
import math
import os
import pathlib
import uuid
import warnings
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from memvos_jax.data import mask_levels
from memvos_jax.errors import InputError

FRAME_SUFFIXES = ('.jpg', '.jpeg', '.png')
PALETTE_LEN = 768  # 256 RGB triplets.


@dataclasses.dataclass(frozen=True)
class Clip:
  """One clip: its frames and the annotated subset of them."""
  name: str
  frame_paths: tuple[pathlib.Path, ...]  # Sorted by file name.
  annotation_paths: dict[int, pathlib.Path]  # Frame index -> annotation PNG.
  # Where annotations live (or would live); used in error messages.
  annotation_dir: pathlib.Path | None = None


@dataclasses.dataclass
class ClipAnnotations:
  """The label maps of one clip."""
  labels: np.ndarray  # [K] int32, sorted unique non-zero object ids.
  palette: list[int] | None  # 768 ints (first palette annotation or DAVIS).
  size: tuple[int, int]  # (H, W) of the frames.
  masks: dict[int, np.ndarray]  # Frame index -> [H, W] uint8 object ids.
  first_frame: int  # Index of the first annotated frame.


@functools.lru_cache(maxsize=1)
def _davis_palette() -> tuple[int, ...]:
  out = []
  for i in range(256):
    r = g = b = 0
    c = i
    for j in range(8):  # PASCAL VOC colour map: interleave the bits of i.
      r |= ((c >> 0) & 1) << (7 - j)
      g |= ((c >> 1) & 1) << (7 - j)
      b |= ((c >> 2) & 1) << (7 - j)
      c >>= 3
    out += [r, g, b]
  return tuple(out)


def davis_palette() -> list[int]:
  """The DAVIS / PASCAL VOC default palette: 768 ints (256 RGB triplets)."""
  return list(_davis_palette())


def _pad_palette(palette: Sequence[int]) -> list[int]:
  palette = list(palette)[:PALETTE_LEN]
  return palette + [0] * (PALETTE_LEN - len(palette))


def _reason(e: Exception) -> str:
  text = ' '.join(str(e).split())  # One line.
  return f'{type(e).__name__}: {text}' if text else type(e).__name__


def _is_visible(p: pathlib.Path) -> bool:
  return not p.name.startswith('.')


# ------------------------------------------------------------------ discovery


def _layout(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """Returns (frames dir, annotations dir) holding the clip folders."""
  if not root.exists():
    raise InputError(root, 'data root does not exist')
  if not root.is_dir():
    raise InputError(root, 'data root is not a folder')
  images = root / 'JPEGImages'
  if not images.is_dir():
    raise InputError(images, 'no JPEGImages folder in the data root')
  if (images / '480p').is_dir():  # DAVIS.
    return images / '480p', root / 'Annotations' / '480p'
  return images, root / 'Annotations'


def _list_frames(folder: pathlib.Path) -> tuple[pathlib.Path, ...]:
  frames = sorted(
      (p for p in folder.iterdir()
       if _is_visible(p) and p.suffix.lower() in FRAME_SUFFIXES
       and p.is_file()),
      key=lambda p: p.name)
  if not frames:
    raise InputError(folder, 'no frames (.jpg/.png) in clip folder')
  seen = {}
  for p in frames:
    if p.stem in seen:
      raise InputError(p, f'frame shares its stem with {seen[p.stem].name}')
    seen[p.stem] = p
  return tuple(frames)


def _list_annotations(folder: pathlib.Path,
                      frames: tuple[pathlib.Path, ...],
                      required: bool) -> dict[int, pathlib.Path]:
  if not folder.is_dir():
    if required:
      raise InputError(folder, 'annotation folder does not exist')
    return {}
  pngs = sorted(
      (p for p in folder.iterdir()
       if _is_visible(p) and p.suffix.lower() == '.png' and p.is_file()),
      key=lambda p: p.name)
  if not pngs and required:
    raise InputError(folder, 'no annotations (.png) in annotation folder')
  index_of = {p.stem: i for i, p in enumerate(frames)}
  out = {}
  for p in pngs:
    if p.stem not in index_of:
      raise InputError(p, 'annotation has no matching frame')
    i = index_of[p.stem]
    if i in out:
      raise InputError(p, f'annotation has the same name stem as {out[i].name}')
    out[i] = p
  return dict(sorted(out.items()))


def clip_names(root, clips: Sequence[str] | None = None) -> list[str]:
  """The clip names under `root` (all, or the named ones, which must exist), sorted.

  Only the layout and the named folders are checked, not their contents: an
  empty or broken clip folder is reported by `find_clip` for that clip alone.
  """
  frames_dir, _ = _layout(pathlib.Path(root))
  if clips is None:
    names = sorted(p.name for p in frames_dir.iterdir()
                   if _is_visible(p) and p.is_dir())
    if not names:
      raise InputError(frames_dir, 'no clip folders in the frames folder')
    return names
  if isinstance(clips, (str, os.PathLike)):
    clips = [clips]
  names = sorted({str(c) for c in clips})
  for name in names:
    if not (frames_dir / name).is_dir():
      raise InputError(frames_dir / name, 'clip folder does not exist')
  return names


def find_clip(root, name: str, require_annotations: bool = True) -> Clip:
  """One clip's frame and annotation files (no pixel data read)."""
  frames_dir, ann_dir = _layout(pathlib.Path(root))
  folder = frames_dir / name
  if not folder.is_dir():
    raise InputError(folder, 'clip folder does not exist')
  frames = _list_frames(folder)
  annotations = _list_annotations(ann_dir / name, frames, require_annotations)
  return Clip(name, frames, annotations, ann_dir / name)


def find_clips(root, clips: Sequence[str] | None = None,
               require_annotations: bool = True) -> list[Clip]:
  """Lists the clips under `root` (all, or the named ones), sorted by name.

  Reads no pixel data. With `require_annotations=False` a clip without an
  annotation folder gets empty `annotation_paths` instead of an error.
  """
  return [find_clip(root, name, require_annotations)
          for name in clip_names(root, clips)]


# ---------------------------------------------------------------- annotations


def _open_size(path: pathlib.Path) -> tuple[int, int]:
  """(H, W) from the image header, without decoding the pixels."""
  try:
    with Image.open(path) as im:
      w, h = im.size
  except Exception as e:  # PIL raises many types for broken files.
    raise InputError(path, f'cannot read image: {_reason(e)}') from e
  return h, w


def _read_png(path: pathlib.Path):
  """Returns (mode, pixels, palette or None), fully decoded."""
  try:
    with Image.open(path) as im:
      im.load()
      mode = im.mode
      palette = im.getpalette() if mode == 'P' else None
      if mode == 'RGBA':
        im = im.convert('RGB')
      pixels = np.array(im)
  except Exception as e:
    raise InputError(path, f'cannot read image: {_reason(e)}') from e
  return mode, pixels, palette


def _rgb_to_ids(path: pathlib.Path, rgb: np.ndarray,
                palettes: list[list[int]]) -> np.ndarray:
  """[H, W, 3] colours -> [H, W] uint8 ids via the first palette holding all."""
  key = (rgb[..., 0].astype(np.int32) << 16 | rgb[..., 1].astype(np.int32) << 8
         | rgb[..., 2].astype(np.int32))  # [H, W]
  colours, inverse = np.unique(key, return_inverse=True)
  for palette in palettes:
    pal = np.asarray(palette, np.int32).reshape(-1, 3)
    pal_key = pal[:, 0] << 16 | pal[:, 1] << 8 | pal[:, 2]  # [256]
    first = {}
    for i, k in enumerate(pal_key.tolist()):
      first.setdefault(k, i)
    if all(c in first for c in colours.tolist()):
      lut = np.array([first[c] for c in colours.tolist()], np.uint8)
      return lut[inverse.reshape(key.shape)]
  raise InputError(path, 'RGB annotation with colours that match no palette '
                   'entry; save it as an indexed (palette) PNG')


def off_by_rounding(have, want) -> bool:
  """Sizes (H, W) that differ by at most 2 px or 1 % per side (an export's rounding)."""
  return all(abs(a - b) <= max(2, 0.01 * b) for a, b in zip(have, want))


def fit_annotation(path, pixels: np.ndarray, size) -> np.ndarray:
  """An annotation [H, W(, 3)] of the frame ``size``; a rounding-sized mismatch is resized.

  Official loaders resize annotations to the frame size, so a mask a pixel or
  two off (e.g. 853 px wide on 854 px frames) is resized with nearest
  neighbour and a one-line warning naming the file; larger mismatches are an
  error.
  """
  h, w = pixels.shape[:2]
  if (h, w) == tuple(size):
    return pixels
  if not off_by_rounding((h, w), size):
    raise InputError(path, f'annotation is {w}x{h} but frames are {size[1]}x{size[0]}')
  warnings.warn(f'{path}: annotation is {w}x{h} but frames are {size[1]}x{size[0]}; '
                'resized (nearest neighbour)', stacklevel=2)
  return np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), Image.NEAREST))


def read_annotations(clip: Clip,
                     require_first_frame: bool = True) -> ClipAnnotations:
  """Loads every annotation of `clip` as [H, W] uint8 object-id maps."""
  size = _open_size(clip.frame_paths[0])  # (H, W)
  ann_dir = clip.annotation_dir
  if ann_dir is None and clip.annotation_paths:
    ann_dir = next(iter(clip.annotation_paths.values())).parent
  if require_first_frame and 0 not in clip.annotation_paths:
    expected = (ann_dir / (clip.frame_paths[0].stem + '.png')
                if ann_dir is not None else clip.frame_paths[0])
    raise InputError(expected, 'no annotation for the first frame of the clip')
  if not clip.annotation_paths:
    raise InputError(ann_dir if ann_dir is not None else clip.frame_paths[0],
                     'clip has no annotations')

  raw = {}  # Frame index -> (path, mode, pixels, palette).
  for i, path in sorted(clip.annotation_paths.items()):
    mode, pixels, palette = _read_png(path)
    if mode not in ('P', 'L', 'RGB', 'RGBA'):
      raise InputError(path, f'unsupported image mode {mode!r} for an '
                       'annotation; save it as an indexed (palette) PNG')
    pixels = fit_annotation(path, pixels, size)
    raw[i] = (path, mode, pixels, palette)

  clip_palettes = [_pad_palette(p) for _, m, _, p in raw.values() if m == 'P']
  palette = clip_palettes[0] if clip_palettes else davis_palette()
  candidates = clip_palettes + [davis_palette()]
  masks = {}
  for i, (path, mode, pixels, _) in raw.items():
    if mode in ('P', 'L'):
      masks[i] = pixels.astype(np.uint8, copy=False)
    else:
      masks[i] = _rgb_to_ids(path, pixels, candidates)
  masks = object_ids(masks, {i: r[0] for i, r in raw.items()})
  first = min(masks)
  if not masks[first].any():
    raise InputError(raw[first][0], 'the first annotation has no object (every pixel is '
                     '0, background); it must show at least one object')
  present = np.zeros(256, bool)
  for m in masks.values():
    present[np.unique(m)] = True
  present[0] = False
  return ClipAnnotations(
      labels=np.flatnonzero(present).astype(np.int32),
      palette=palette,
      size=size,
      masks=masks,
      first_frame=first)


def object_ids(masks: dict[int, np.ndarray], paths) -> dict[int, np.ndarray]:
  """Binary and anti-aliased 0/255 masks -> one object (id 1); interpolated ids refused.

  Binary 0/255 masks (DAVIS-2016, most editors' exports) are one object. A
  0/255 mask with a few grey levels along its edges (an anti-aliased export)
  is thresholded at 128, with a one-line warning naming the file. A
  multi-object mask with many ids that only form thin slivers along object
  edges (interpolated resizing, anti-aliasing) is refused.
  """
  kinds = {i: mask_levels.kind(m) for i, m in masks.items()}
  if all(k in ('binary', 'antialiased') for k in kinds.values()):
    for i, k in kinds.items():
      if k == 'antialiased':
        levels, share = mask_levels.grey_levels(masks[i])
        warnings.warn(f'{paths[i]}: 0/255 mask with {levels} anti-aliasing grey levels '
                      f'along its edges ({100 * share:.1f} % of the pixels); read as one '
                      f'object (value >= {mask_levels.THRESHOLD})', stacklevel=3)
    return {i: (m >= mask_levels.THRESHOLD).astype(np.uint8) for i, m in masks.items()}
  for i, m in masks.items():
    junk = mask_levels.junk_ids(m)
    if junk:
      raise InputError(paths[i], f'ids {mask_levels.id_list(junk)} each cover only a thin '
                       'sliver along object edges: this looks like anti-aliasing or '
                       'interpolated resizing, not objects; export the mask without '
                       'anti-aliasing (nearest-neighbour resizing) as an indexed PNG')
  return masks


# --------------------------------------------------------------------- frames


def processing_size(size, shorter: int) -> tuple[int, int]:
  """(H, W) with the shorter side ``shorter`` (torchvision ``Resize`` rule); 0 keeps ``size``."""
  h, w = size
  if not shorter or min(h, w) == shorter:
    return (h, w)
  return (shorter, int(shorter * w / h)) if h <= w else (int(shorter * h / w), shorter)


def resize_frames(frames: np.ndarray, size) -> np.ndarray:
  """[T, H, W, 3] uint8 -> [T, size[0], size[1], 3] (bilinear); unchanged if equal."""
  if tuple(frames.shape[1:3]) == tuple(size):
    return frames
  return np.stack([np.asarray(Image.fromarray(f).resize(size[::-1], Image.BILINEAR))
                   for f in frames])


def resize_ids(mask: np.ndarray, size) -> np.ndarray:
  """[H, W] uint8 object ids -> [size[0], size[1]] (nearest); unchanged if equal."""
  if tuple(mask.shape) == tuple(size):
    return mask
  return np.asarray(Image.fromarray(mask).resize(size[::-1], Image.NEAREST))


def read_frame(path) -> np.ndarray:
  """Decodes one image to [H, W, 3] uint8 RGB."""
  path = pathlib.Path(path)
  try:
    with Image.open(path) as im:
      im.load()
      rgb = np.asarray(im.convert('RGB'))  # [H, W, 3]
  except Exception as e:
    raise InputError(path, f'cannot read image: {_reason(e)}') from e
  return rgb


class FrameReader:
  """Streams a clip's frames in fixed-size chunks, decoded lazily, with a
  background thread prefetching the next chunk.

  Iterating yields (start_index, frames [n <= chunk, H, W, 3] uint8). At most
  two chunks are alive inside the reader: the one handed out and the next.
  """

  def __init__(self, clip: Clip, chunk: int, size: tuple[int, int]):
    if chunk < 1:
      raise ValueError(f'chunk must be >= 1, got {chunk}')
    self.clip = clip
    self.chunk = int(chunk)
    self.size = (int(size[0]), int(size[1]))  # (H, W)

  def __len__(self) -> int:
    return math.ceil(len(self.clip.frame_paths) / self.chunk)

  def _decode(self, start: int) -> np.ndarray:
    paths = self.clip.frame_paths[start:start + self.chunk]
    h, w = self.size
    out = np.empty((len(paths), h, w, 3), np.uint8)  # [n, H, W, 3]
    for j, path in enumerate(paths):
      frame = read_frame(path)
      if frame.shape[:2] != (h, w):
        raise InputError(path, f'frame is {frame.shape[1]}x{frame.shape[0]} '
                         f"but the clip's first frame is {w}x{h}")
      out[j] = frame
    return out

  def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
    starts = range(0, len(self.clip.frame_paths), self.chunk)
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix=f'frames-{self.clip.name}')
    try:
      pending = pool.submit(self._decode, starts[0]) if starts else None
      for k, start in enumerate(starts):
        frames = pending.result()
        pending = None  # Drop the future's reference to the chunk.
        if k + 1 < len(starts):
          pending = pool.submit(self._decode, starts[k + 1])
        yield start, frames
        del frames
    finally:
      pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------- masks


def write_mask(path, mask: np.ndarray, palette: Sequence[int]) -> None:
  """Writes [H, W] uint8 ids as an indexed PNG, atomically (temp + rename)."""
  path = pathlib.Path(path)
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f'mask must be [H, W], got shape {mask.shape}')
  if mask.dtype != np.uint8:
    if mask.size and (mask.min() < 0 or mask.max() > 255):
      raise ValueError('mask ids must be in [0, 255]')
    mask = mask.astype(np.uint8)
  im = Image.fromarray(np.ascontiguousarray(mask))  # Mode 'L'.
  im.putpalette(_pad_palette(palette))  # -> mode 'P'.
  # A unique sibling name: same file system (atomic rename), normal umask.
  tmp = path.parent / f'.{path.name}.{uuid.uuid4().hex}.tmp'
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, 'wb') as f:
      im.save(f, format='PNG')
    os.replace(tmp, path)
  except OSError as e:
    raise InputError(path, f'cannot write mask: {_reason(e)}') from e
  finally:
    tmp.unlink(missing_ok=True)
