"""Unlabeled neighbouring-frame pairs for self-supervised training, and
annotated pseudo-clips with known motion for evaluating label propagation.

``find_frame_folders`` lists every folder of JPEG frames under some roots (a
bare folder of frames, or a DAVIS/YouTube-VOS root: annotations are never
read). ``FramePairs`` draws (target, reference) pairs: the reference is 1 to
``max_gap`` frames before the target (or after, with ``reverse_prob``), both
cut by random crops after resizing to a shorter side (the reference's crop
shifted by up to ``max_shift`` pixels from the target's: extra, known camera
motion), optionally flipped together. A batch is a pure function of (seed, index).

``pan_clip`` turns one annotated image into a clip whose every frame has
ground truth: a camera window moving and zooming smoothly over the image
(image bilinear, mask nearest). ``paste_clip`` moves the annotated objects,
cut out of their image, independently over the frames of another (real)
video. The bundled clips have no ground truth after the frame that gives
each object, so these are what J&F is scored on.
"""

import functools
import os
import pathlib

import numpy as np
from PIL import Image

from memvos_jax.data.video_folder import read_frame, write_mask
from memvos_jax.errors import InputError

REPO = pathlib.Path(__file__).resolve().parents[2]
JPEG = ('.jpg', '.jpeg')


def resolve(path) -> pathlib.Path:
  """``path`` as given, or relative to the repository root when that exists."""
  p = pathlib.Path(path)
  if not p.exists() and not p.is_absolute() and (REPO / p).exists():
    return REPO / p
  return p


def find_frame_folders(roots, min_frames: int = 2) -> list[pathlib.Path]:
  """Folders holding >= ``min_frames`` JPEG frames under each root (recursive)."""
  if isinstance(roots, (str, os.PathLike)):
    roots = [r for r in str(roots).split(',') if r]
  out = []
  for root in roots:
    root = resolve(root)
    if not root.is_dir():
      raise InputError(root, 'training frame folder does not exist')
    found = [d for d in sorted([root, *root.rglob('*')]) if d.is_dir()
             and sum(p.suffix.lower() in JPEG for p in d.iterdir()) >= min_frames]
    if not found:
      raise InputError(root, f'no folder with >= {min_frames} JPEG frames under it')
    out.extend(found)
  return out


@functools.lru_cache(maxsize=4096)
def _load_resized(path: str, short_side: int) -> np.ndarray:
  img = read_frame(path)
  h, w = img.shape[:2]
  s = short_side / min(h, w)
  size = (max(short_side, round(w * s)), max(short_side, round(h * s)))
  return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


class FramePairs:
  """Random (target, reference) pairs of nearby frames from folders of JPEGs."""

  def __init__(self, folders, crop: int, short_side: int, max_gap: int = 3,
               reverse_prob: float = 0.5, flip_prob: float = 0.5, seed: int = 0,
               max_shift: int = 0):
    self.clips = [sorted(str(p) for p in pathlib.Path(f).iterdir() if p.suffix.lower() in JPEG)
                  for f in folders]
    self.clips = [c for c in self.clips if len(c) >= 2]
    if not self.clips:
      raise InputError(', '.join(map(str, folders)), 'no folder with two frames')
    if short_side < crop + 2 * max_shift:
      raise ValueError(f'short_side {short_side} < crop {crop} + 2 * max_shift {max_shift}')
    self.crop, self.short_side, self.max_gap = crop, short_side, max_gap
    self.reverse_prob, self.flip_prob, self.seed = reverse_prob, flip_prob, seed
    self.max_shift = max_shift
    self.weights = np.array([len(c) for c in self.clips], np.float64)
    self.weights /= self.weights.sum()

  def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """([S, S, 3] target, [S, S, 3] reference) uint8."""
    clip = self.clips[rng.choice(len(self.clips), p=self.weights)]
    gap = int(rng.integers(1, min(self.max_gap, len(clip) - 1) + 1))
    t = int(rng.integers(gap, len(clip)))
    a, b = _load_resized(clip[t], self.short_side), _load_resized(clip[t - gap], self.short_side)
    if rng.random() < self.reverse_prob:
      a, b = b, a
    h, w = a.shape[:2]
    s, c = self.max_shift, self.crop
    y, x = int(rng.integers(s, h - c - s + 1)), int(rng.integers(s, w - c - s + 1))
    dy, dx = (int(v) for v in rng.integers(-s, s + 1, 2))
    a, b = a[y:y + c, x:x + c], b[y + dy:y + dy + c, x + dx:x + dx + c]
    if rng.random() < self.flip_prob:
      a, b = a[:, ::-1], b[:, ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)

  def batch(self, index: int, size: int) -> dict[str, np.ndarray]:
    """Batch ``index``: {'target', 'reference'}: [B, S, S, 3] uint8."""
    rng = np.random.default_rng([self.seed, index])
    pairs = [self.pair(rng) for _ in range(size)]
    return {'target': np.stack([p[0] for p in pairs]),
            'reference': np.stack([p[1] for p in pairs])}


# --------------------------------------------------------------- pseudo-clips


def _sample(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, nearest: bool) -> np.ndarray:
  """``image`` [H, W(, C)] at float rows/cols [h, w] (border clamped)."""
  h, w = image.shape[:2]
  if nearest:
    iy = np.clip(np.rint(ys), 0, h - 1).astype(int)
    return image[iy, np.clip(np.rint(xs), 0, w - 1).astype(int)]
  y0 = np.clip(np.floor(ys), 0, h - 2).astype(int)
  x0 = np.clip(np.floor(xs), 0, w - 2).astype(int)
  ly = np.clip(ys - y0, 0, 1)[..., None]
  lx = np.clip(xs - x0, 0, 1)[..., None]
  im = image.astype(np.float32)
  out = (im[y0, x0] * (1 - ly) * (1 - lx) + im[y0, x0 + 1] * (1 - ly) * lx
         + im[y0 + 1, x0] * ly * (1 - lx) + im[y0 + 1, x0 + 1] * ly * lx)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _window(size, out_size, centre, scale):
  """Rows/cols [h, w] of a window of ``out_size`` * scale centred at ``centre``."""
  oh, ow = out_size
  ys = centre[0] + (np.arange(oh) - (oh - 1) / 2) * scale
  xs = centre[1] + (np.arange(ow) - (ow - 1) / 2) * scale
  return np.broadcast_to(ys[:, None], (oh, ow)), np.broadcast_to(xs[None, :], (oh, ow))


def pan_clip(image, mask, num_frames: int, out_size, rng: np.random.Generator,
             speed: float = 2.0, zoom: float = 0.01):
  """Camera motion over one annotated image.

  The window is ``out_size`` pixels at the first frame's scale (covering 80 %
  of the image), starts as near the objects' centre as it fits, moves
  ``speed`` output pixels per frame in a random direction that turns slowly
  (bouncing off the border), and zooms by ``zoom`` per frame. Returns
  (frames [T, h, w, 3] uint8, masks [T, h, w] uint8).
  """
  h, w = mask.shape
  scale0 = 0.8 * min(h / out_size[0], w / out_size[1])
  half = np.array(out_size) * scale0 / 2
  ys, xs = np.nonzero(mask)
  centre = np.array([ys.mean(), xs.mean()] if len(ys) else [h / 2, w / 2], np.float64)
  centre = np.clip(centre, half, np.array([h, w]) - half)
  angle = rng.uniform(0, 2 * np.pi)
  turn = rng.uniform(-0.15, 0.15)
  sign = rng.choice([-1.0, 1.0])
  frames, masks = [], []
  for t in range(num_frames):
    scale = scale0 * (1 + sign * zoom) ** t
    ys, xs = _window((h, w), out_size, centre, scale)
    frames.append(_sample(image, ys, xs, nearest=False))
    masks.append(_sample(mask, ys, xs, nearest=True))
    centre += speed * scale * np.array([np.sin(angle), np.cos(angle)])
    half = np.array(out_size) * scale / 2
    if not (half[0] <= centre[0] <= h - half[0] and half[1] <= centre[1] <= w - half[1]):
      angle += np.pi   # bounce off the image border
    centre = np.clip(centre, half, np.array([h, w]) - half)
    angle += turn
  return np.stack(frames), np.stack(masks)


def paste_clip(image, mask, background_frames, out_size, rng: np.random.Generator,
               speed: float = 2.0):
  """The objects of ``mask`` cut from ``image``, each moving with its own
  constant velocity (``speed`` px/frame), over ``background_frames``
  [T, Hb, Wb, 3] resized to ``out_size``. Later ids are drawn on top."""
  oh, ow = out_size
  h, w = mask.shape
  s = min(oh / h, ow / w)
  ys, xs = _window((h, w), out_size, (h / 2, w / 2), 1 / s)
  image, mask = _sample(image, ys, xs, False), _sample(mask, ys, xs, True)
  ids = [i for i in np.unique(mask) if i]
  vel = {i: speed * np.array([np.sin(a), np.cos(a)])
         for i, a in zip(ids, rng.uniform(0, 2 * np.pi, len(ids)))}
  frames, masks = [], []
  gy, gx = np.mgrid[:oh, :ow].astype(np.float64)
  for t, bg in enumerate(background_frames):
    frame = np.asarray(Image.fromarray(bg).resize((ow, oh), Image.BILINEAR)).copy()
    out = np.zeros((oh, ow), np.uint8)
    for i in ids:
      dy, dx = vel[i] * t
      m = _sample((mask == i).astype(np.uint8), gy - dy, gx - dx, True).astype(bool)
      frame[m] = _sample(image, gy - dy, gx - dx, False)[m]
      out[m] = i
    frames.append(frame)
    masks.append(out)
  return np.stack(frames), np.stack(masks)


def write_clip(root, name: str, frames, masks, palette) -> None:
  """A DAVIS-generic-layout clip: ``root/JPEGImages/name/%05d.jpg`` and
  ``root/Annotations/name/%05d.png`` for every frame (dense ground truth)."""
  root = pathlib.Path(root)
  (root / 'JPEGImages' / name).mkdir(parents=True, exist_ok=True)
  for t, (f, m) in enumerate(zip(frames, masks)):
    Image.fromarray(f).save(root / 'JPEGImages' / name / f'{t:05d}.jpg', quality=95)
    write_mask(root / 'Annotations' / name / f'{t:05d}.png', m, palette)
