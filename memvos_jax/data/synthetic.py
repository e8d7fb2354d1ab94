"""Synthetic training videos: textured objects moving over real backgrounds.

Needs no download. Textures and backgrounds are cut from bundled frames
(``../shared/data/real_clips`` when present, else the repo's
``examples/``), or drawn procedurally when neither exists. A video is a pure
function of its random generator: objects are star-shaped blobs with their
own texture and tint, moving with constant velocity, scaling and rotating,
occluding each other in a fixed depth order, some entering from outside the
frame, over a slowly panning background. ``render`` draws any set of
(continuous) frame times, so the max-skip curriculum applies unchanged.
"""

import dataclasses
import functools
import pathlib

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
TEXTURE_DIRS = (REPO.parent / 'shared' / 'data' / 'real_clips' / 'JPEGImages',
                REPO / 'examples')


@functools.lru_cache(maxsize=4)
def texture_bank(max_images: int = 24, size: int = 256) -> tuple[np.ndarray, ...]:
  """RGB images ([S, S', 3] uint8, shorter side ``size``) to cut textures from."""
  paths = []
  for d in TEXTURE_DIRS:
    if d.is_dir():
      paths = sorted(p for p in d.rglob('*') if p.suffix.lower() in ('.jpg', '.jpeg'))
      if paths:
        break
  # As many frames from every clip folder (frames of one clip look alike).
  groups = {}
  for p in paths:
    groups.setdefault(p.parent, []).append(p)
  per = max(1, max_images // max(len(groups), 1))
  chosen = [g[i * len(g) // per] for g in groups.values() for i in range(min(per, len(g)))]
  images = []
  for p in chosen:
    with Image.open(p) as im:
      im = im.convert('RGB')
      w, h = im.size
      s = size / min(w, h)
      images.append(np.asarray(im.resize((max(size, round(w * s)), max(size, round(h * s))),
                                         Image.BILINEAR)))
  # Procedural textures always join (the only ones without bundled frames).
  images += [procedural_texture(np.random.default_rng(i), size) for i in range(8)]
  return tuple(images)


def procedural_texture(rng: np.random.Generator, size: int) -> np.ndarray:
  """A [size, size, 3] uint8 texture: smooth colour noise plus stripes."""
  coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.float32)
  img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BICUBIC),
                   np.float32)
  y, x = np.mgrid[:size, :size]
  f, a = rng.uniform(0.05, 0.3), rng.uniform(0, np.pi)
  stripes = 40 * np.sin(f * (x * np.cos(a) + y * np.sin(a)))[..., None]
  return np.clip(img + stripes + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class SyntheticSettings:
  size: tuple[int, int] = (128, 128)  # (H, W) of rendered frames
  min_objects: int = 1
  max_objects: int = 3
  speed: tuple[float, float] = (0.01, 0.035)  # per frame, fraction of the frame size
  radius: tuple[float, float] = (0.12, 0.25)  # object radius, fraction of min(H, W)
  enter_prob: float = 0.3    # an object starts outside the frame and moves in


def _blob(rng):
  """Star-shaped outline: radius(theta) = 1 + sum_i a_i cos(i theta + phi_i)."""
  n = 4
  amps = rng.uniform(0, 0.35, n) / np.arange(1, n + 1)
  phases = rng.uniform(0, 2 * np.pi, n)
  return amps, phases


def sample_video(rng: np.random.Generator, settings: SyntheticSettings, length: int):
  """The parameters of one video (a dict of arrays); ``render`` draws frames."""
  h, w = settings.size
  bank = texture_bank()
  n = int(rng.integers(settings.min_objects, settings.max_objects + 1))
  bg = int(rng.integers(len(bank)))
  objects = []
  for _ in range(n):
    r = rng.uniform(*settings.radius) * min(h, w)
    speed = rng.uniform(*settings.speed) * np.array([h, w])
    ang = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.sin(ang), np.cos(ang)])
    pos = rng.uniform([0.2 * h, 0.2 * w], [0.8 * h, 0.8 * w])
    if rng.random() < settings.enter_prob:   # start outside, move inwards
      pos = np.array([h / 2, w / 2]) - vel * length * 0.5 * rng.uniform(0.6, 1.0)
      pos = pos - vel / max(np.linalg.norm(vel), 1e-6) * r
    amps, phases = _blob(rng)
    tex = int(rng.integers(len(bank)))
    th, tw = bank[tex].shape[:2]
    objects.append(dict(
        radius=r, pos=pos, vel=vel,
        scale_rate=rng.uniform(-0.015, 0.015), spin=rng.uniform(-0.05, 0.05),
        angle=rng.uniform(0, 2 * np.pi), amps=amps, phases=phases, texture=tex,
        tex_origin=rng.uniform([0, 0], [max(th - 2 * r - 1, 1), max(tw - 2 * r - 1, 1)]),
        tint=rng.uniform(-50, 50, 3)))
  bh, bw = bank[bg].shape[:2]
  pan = rng.uniform(-0.3, 0.3, 2)
  bg_origin = rng.uniform([0, 0], [max(bh - h, 1), max(bw - w, 1)])
  return dict(background=bg, bg_origin=bg_origin, pan=pan, objects=objects, size=(h, w),
              flip=bool(rng.random() < 0.5))


def render(video, times) -> tuple[np.ndarray, np.ndarray]:
  """Frames at ``times`` -> (frames [T, H, W, 3] uint8, ids [T, H, W] uint8, 0 = bg)."""
  bank = texture_bank()
  h, w = video['size']
  y, x = np.mgrid[:h, :w].astype(np.float32)
  frames = np.zeros((len(times), h, w, 3), np.uint8)
  ids = np.zeros((len(times), h, w), np.uint8)
  bg = bank[video['background']]
  bh, bw = bg.shape[:2]
  for i, t in enumerate(times):
    oy, ox = video['bg_origin'] + video['pan'] * t
    oy = int(np.clip(oy, 0, bh - h)) if bh > h else 0
    ox = int(np.clip(ox, 0, bw - w)) if bw > w else 0
    img = np.zeros((h, w, 3), np.float32)
    crop = bg[oy:oy + h, ox:ox + w]
    img[:crop.shape[0], :crop.shape[1]] = crop
    lab = np.zeros((h, w), np.uint8)
    for k, o in enumerate(video['objects']):
      scale = float(np.exp(o['scale_rate'] * t))
      r = o['radius'] * scale
      cy, cx = o['pos'] + o['vel'] * t
      ang = o['angle'] + o['spin'] * t
      dy, dx = y - cy, x - cx
      rho = np.sqrt(dy * dy + dx * dx) / r
      theta = np.arctan2(dy, dx) - ang
      edge = 1.0 + sum(a * np.cos((j + 1) * theta + p)
                       for j, (a, p) in enumerate(zip(o['amps'], o['phases'])))
      inside = rho <= edge
      if not inside.any():
        continue
      # Texture coordinates rotate and scale with the object.
      c, s = np.cos(ang), np.sin(ang)
      u = (c * dy[inside] - s * dx[inside]) / scale + o['radius']
      v = (s * dy[inside] + c * dx[inside]) / scale + o['radius']
      tex = bank[o['texture']]
      ty = np.clip((u + o['tex_origin'][0]).astype(np.int32), 0, tex.shape[0] - 1)
      tx = np.clip((v + o['tex_origin'][1]).astype(np.int32), 0, tex.shape[1] - 1)
      img[inside] = tex[ty, tx] + o['tint']
      lab[inside] = k + 1
    if video['flip']:
      img, lab = img[:, ::-1], lab[:, ::-1]
    frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    ids[i] = lab
  return frames, ids


class SyntheticSource:
  """Random-access synthetic videos: record i is video i (a pure function of seed, i)."""

  def __init__(self, settings: SyntheticSettings, length: int = 40,
               num_videos: int = 10_000, seed: int = 0):
    self.settings, self.length, self.num_videos, self.seed = settings, length, num_videos, seed
    self.name = 'synthetic'

  def __len__(self) -> int:
    return self.num_videos

  def num_frames(self, i: int) -> int:
    return self.length

  def video(self, i: int):
    return sample_video(np.random.default_rng([self.seed, 7, i]), self.settings, self.length)

  def load(self, i: int, frame_indices, rng=None):
    """Frames (T, H, W, 3) and ids (T, H, W) of video ``i`` at ``frame_indices``."""
    return render(self.video(i), np.asarray(frame_indices, np.float32))


def heldout_clips(num_clips: int, num_frames: int, size, seed: int = 1_000_003,
                  frame_step: float = 2.0):
  """Validation clips disjoint from training (another seed stream): list of (frames, ids)."""
  settings = SyntheticSettings(size=tuple(size))
  out = []
  for i in range(num_clips):
    rng = np.random.default_rng([seed, 11, i])
    v = sample_video(rng, settings, int(num_frames * frame_step))
    frames, ids = render(v, np.arange(num_frames, dtype=np.float32) * frame_step)
    out.append((frames, ids))
  return out
