"""Pseudo-videos pasted together from real frames (the static-image stage on video data).

STCN and STM pretrain on static images with masks turned into short clips by
random affine warps. Here the image pool is the training videos' own annotated
frames: each pseudo-video cuts 1-N objects (with their masks) out of random
frames of random clips and pastes them, each moving with its own smooth affine
motion (translation, rotation, scale), over a background frame of another clip
that pans and zooms slowly. Later objects occlude earlier ones; the labels are
the visible parts. A clip is a pure function of (item, rng) and has
``length`` virtual frames, so the max-skip curriculum samples it like a video.
"""

import numpy as np
from PIL import Image

from memvos_jax.data import augment


def _lerp(a, b, s):
  return a + (b - a) * s


class PasteSource:
  """``num_clips`` virtual pseudo-videos of ``length`` frames from ``pool`` video sources.

  ``pool``: video sources (``sources.VideoSource``: folders or ArrayRecord);
  objects and backgrounds are drawn from all of them.
  """

  def __init__(self, pool, num_clips: int, length: int, out_size: int, max_objects: int,
               name: str = 'pasted'):
    self.pool, self.name = list(pool), name
    self.num_clips, self.length, self.out_size = num_clips, length, out_size
    self.max_objects = max(1, max_objects)
    self.index = [(s, c) for s, src in enumerate(self.pool) for c in range(len(src))]

  def __len__(self) -> int:
    return self.num_clips

  def num_frames(self, i: int) -> int:
    return self.length

  def _random_frame(self, rng):
    s, c = self.index[int(rng.integers(len(self.index)))]
    src = self.pool[s]
    return src._frame(c, int(rng.integers(src.num_frames(c)))), (s, c)

  def _cutout(self, rng):
    """(RGB [h, w, 3], mask [h, w] bool) of one object cropped to its box, or None."""
    for _ in range(6):
      (image, ids), _ = self._random_frame(rng)
      present = np.unique(ids)
      present = present[present != 0]
      if not len(present):
        continue
      mask = ids == rng.choice(present)
      ys, xs = np.nonzero(mask)
      if len(ys) < 64:
        continue
      t, b, l, r = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
      return image[t:b, l:r], mask[t:b, l:r]
    return None

  def _motion(self, rng, size, scale_range):
    """(start, end) affine parameters: centre (x, y), angle, scale."""
    def one(c, s):
      return np.array([c[0], c[1], rng.uniform(-20, 20), s])
    c0 = rng.uniform(0.2, 0.8, 2) * size
    c1 = c0 + rng.normal(0, 0.15, 2) * size
    s0 = rng.uniform(*scale_range)
    return one(c0, s0), one(c1, s0 * rng.uniform(0.8, 1.25))

  def load(self, i: int, frame_indices, rng):
    size = self.out_size
    (bg, _), _ = self._random_frame(rng)
    bg_im = Image.fromarray(bg)
    bw, bh = bg_im.size
    box0 = augment.resized_crop_box(rng, (bw, bh), (0.3, 1.0))
    shift = rng.normal(0, 0.08, 2) * (bw, bh)
    zoom = rng.uniform(0.9, 1.1)
    objects = []
    for _ in range(int(rng.integers(1, self.max_objects + 1))):
      cut = self._cutout(rng)
      if cut is None:
        continue
      im, mask = cut
      fit = size / max(im.shape[:2])
      objects.append((Image.fromarray(im), Image.fromarray(mask.astype(np.uint8) * 255),
                      self._motion(rng, size, (0.25 * fit, 0.8 * fit))))
    clip_color = augment.color_jitter(rng, 0.1, 0.05, 0.05, 0.02)
    frames = np.empty((len(frame_indices), size, size, 3), np.uint8)
    labels = np.zeros((len(frame_indices), size, size), np.uint8)
    for n, j in enumerate(frame_indices):
      s = j / max(self.length - 1, 1)
      l, t, r, b = box0
      dx, dy = shift * s
      cx, cy, half = (l + r) / 2 + dx, (t + b) / 2 + dy, np.array([r - l, b - t]) / 2
      half = np.minimum(half * _lerp(1.0, zoom, s), (bw / 2, bh / 2))
      cx, cy = np.clip(cx, half[0], bw - half[0]), np.clip(cy, half[1], bh - half[1])
      box = (cx - half[0], cy - half[1], cx + half[0], cy + half[1])   # inside the frame
      canvas = bg_im.resize((size, size), Image.BICUBIC, box=box)
      lab = np.zeros((size, size), np.uint8)
      for k, (im, mask, (p0, p1)) in enumerate(objects):
        x, y, angle, scale = _lerp(p0, p1, s)
        w, h = im.size
        # Output pixel -> object pixel: undo translation, rotation and scale.
        coeffs = augment.affine_matrix((w / 2, h / 2), angle, (x - w / 2, y - h / 2), scale,
                                       (0.0, 0.0))
        warped = im.transform((size, size), Image.AFFINE, coeffs, Image.BILINEAR)
        alpha = mask.transform((size, size), Image.AFFINE, coeffs, Image.BILINEAR)
        canvas.paste(warped, (0, 0), alpha)
        lab[np.asarray(alpha) >= 128] = k + 1
      frames[n] = augment._photometric(rng, canvas, clip_color, False, (0.02, 0.02, 0.02))
      labels[n] = lab
    return frames, labels
