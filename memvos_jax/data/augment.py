"""Clip augmentations of the official STCN training (numpy + PIL, seeded).

Every transform takes an explicit ``np.random.Generator`` so a sample is a
pure function of its seed. ``video_clip`` applies one random resized crop and
flip to every frame of a clip (clip-consistent), then a small per-frame affine
(the same for a frame and its mask) and colour jitter (clip-wide, then a
little per frame), as ``dataset/vos_dataset.py``. ``static_clip`` turns one
image+mask into three frames as ``dataset/static_dataset.py`` (without the
thin-plate-spline warp). Images use bicubic resampling filled with the
ImageNet mean, masks nearest filled with 0.
"""

import math

import numpy as np
from PIL import Image

IM_MEAN = (124, 116, 104)   # official fill: round(255 * (0.485, 0.456, 0.406))


def affine_matrix(center, angle, translate, scale, shear):
  """torchvision's inverse affine (output -> input pixel) as PIL's 6 coefficients."""
  rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
  cx, cy = center
  tx, ty = translate
  a = math.cos(rot - sy) / math.cos(sy)
  b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
  c = math.sin(rot - sy) / math.cos(sy)
  d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
  m = [d, -b, 0.0, -c, a, 0.0]
  m = [x / scale for x in m]
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
  m[2] += cx
  m[5] += cy
  return m


def random_affine(rng, size, degrees=0.0, scale=(1.0, 1.0), shear=0.0):
  """Parameters of torchvision ``RandomAffine`` -> PIL coefficients for ``size`` (W, H)."""
  angle = rng.uniform(-degrees, degrees) if degrees else 0.0
  s = rng.uniform(*scale) if scale != (1.0, 1.0) else 1.0
  sh = (rng.uniform(-shear, shear), 0.0) if shear else (0.0, 0.0)
  w, h = size
  return affine_matrix((w * 0.5, h * 0.5), angle, (0, 0), s, sh)


def apply_affine(image: Image.Image, label: Image.Image, coeffs):
  size = image.size
  image = image.transform(size, Image.AFFINE, coeffs, Image.BICUBIC, fillcolor=IM_MEAN)
  label = label.transform(size, Image.AFFINE, coeffs, Image.NEAREST, fillcolor=0)
  return image, label


def resized_crop_box(rng, size, scale, ratio=(3 / 4, 4 / 3)):
  """torchvision ``RandomResizedCrop.get_params``: (left, top, right, bottom) of (W, H)."""
  w, h = size
  area = w * h
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    cw = int(round(math.sqrt(target * aspect)))
    ch = int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return left, top, left + cw, top + ch
  in_ratio = w / h
  if in_ratio < ratio[0]:
    cw, ch = w, int(round(w / ratio[0]))
  elif in_ratio > ratio[1]:
    ch, cw = h, int(round(h * ratio[1]))
  else:
    cw, ch = w, h
  top, left = (h - ch) // 2, (w - cw) // 2
  return left, top, left + cw, top + ch


def color_jitter(rng, brightness, contrast, saturation, hue=0.0):
  """A random colour transform [H, W, 3] float -> float (torchvision order fixed)."""
  b = rng.uniform(max(0, 1 - brightness), 1 + brightness)
  c = rng.uniform(max(0, 1 - contrast), 1 + contrast)
  s = rng.uniform(max(0, 1 - saturation), 1 + saturation)
  hshift = rng.uniform(-hue, hue) if hue else 0.0

  def f(x):
    x = np.clip(x * b, 0, 255)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = np.clip((x - gray.mean()) * c + gray.mean(), 0, 255)
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = np.clip((x - gray) * s + gray, 0, 255)
    if hshift:   # rotate the chroma plane (an approximation of a hue shift)
      yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                      [0.211, -0.523, 0.312]], np.float32)
      q = x @ yiq.T
      a = hshift * 2 * np.pi
      rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]],
                     np.float32)
      x = np.clip(q @ rot.T @ np.linalg.inv(yiq).T, 0, 255)
    return x
  return f


def _gray(x):
  g = x @ np.array([0.299, 0.587, 0.114], np.float32)
  return np.repeat(g[..., None], 3, axis=-1)


def _photometric(rng, im, clip_color, gray, jitter) -> np.ndarray:
  """Clip-wide colour jitter, optional greyscale, then a per-frame jitter -> uint8 [H, W, 3]."""
  x = clip_color(np.asarray(im, np.float32))
  x = _gray(x) if gray else x
  x = color_jitter(rng, *jitter)(x)
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def video_clip(rng, frames, labels, out_size: int, crop_scale=(0.36, 1.0),
               degrees=15.0, shear=10.0):
  """frames [T, H, W, 3] uint8, labels [T, H, W] uint8 -> the same at out_size^2."""
  h, w = frames.shape[1:3]
  box = resized_crop_box(rng, (w, h), crop_scale)
  flip = rng.random() < 0.5
  clip_color = color_jitter(rng, 0.1, 0.03, 0.03)
  gray = rng.random() < 0.05
  out_f = np.empty((len(frames), out_size, out_size, 3), np.uint8)
  out_l = np.empty((len(frames), out_size, out_size), np.uint8)
  for i in range(len(frames)):
    im = Image.fromarray(frames[i]).resize((out_size, out_size), Image.BICUBIC, box=box)
    lb = Image.fromarray(labels[i]).resize((out_size, out_size), Image.NEAREST, box=box)
    if flip:
      im, lb = im.transpose(Image.FLIP_LEFT_RIGHT), lb.transpose(Image.FLIP_LEFT_RIGHT)
    im, lb = apply_affine(im, lb, random_affine(rng, im.size, degrees, shear=shear))
    out_f[i] = _photometric(rng, im, clip_color, gray, (0.01, 0.01, 0.01))
    out_l[i] = np.asarray(lb)
  return out_f, out_l


def static_clip(rng, image, label, out_size: int, num_frames: int = 3):
  """One image [H, W, 3] + label [H, W] -> a pseudo-video of ``num_frames`` frames."""
  im0, lb0 = Image.fromarray(image), Image.fromarray(label)
  seq = random_affine(rng, im0.size, 0.0, (0.8, 1.5))
  flip = rng.random() < 0.5
  clip_color = color_jitter(rng, 0.1, 0.05, 0.05, 0.05)
  gray = rng.random() < 0.05
  out_f = np.empty((num_frames, out_size, out_size, 3), np.uint8)
  out_l = np.empty((num_frames, out_size, out_size), np.uint8)
  for i in range(num_frames):
    im, lb = apply_affine(im0, lb0, seq)
    if flip:
      im, lb = im.transpose(Image.FLIP_LEFT_RIGHT), lb.transpose(Image.FLIP_LEFT_RIGHT)
    im, lb = apply_affine(im, lb, random_affine(rng, im.size, 20.0, (0.9, 1.1), 10.0))
    # Resize the shorter side to out_size, random crop (padded if needed).
    w, h = im.size
    s = out_size / min(w, h)
    nw, nh = max(out_size, round(w * s)), max(out_size, round(h * s))
    im, lb = im.resize((nw, nh), Image.BICUBIC), lb.resize((nw, nh), Image.NEAREST)
    top = int(rng.integers(0, nh - out_size + 1))
    left = int(rng.integers(0, nw - out_size + 1))
    box = (left, top, left + out_size, top + out_size)
    im, lb = im.crop(box), lb.crop(box)
    out_f[i] = _photometric(rng, im, clip_color, gray, (0.1, 0.05, 0.05))
    out_l[i] = np.asarray(lb)
  return out_f, out_l


def light_clip(rng, frames, labels):
  """For synthetic clips (already random): clip-wide colour jitter only."""
  f = color_jitter(rng, 0.1, 0.03, 0.03)
  out = np.stack([f(x.astype(np.float32)) for x in frames])
  return np.clip(np.round(out), 0, 255).astype(np.uint8), labels
