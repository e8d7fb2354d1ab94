"""Run an exported memvos_jax streaming step with jax and numpy alone (no memvos_jax).

Copied into every artifact folder as ``runner.py`` by ``python -m memvos_jax export``:

    python runner.py --frames FRAMES_DIR --mask first.png --out masks/ [--artifact DIR]

or, from Python (a webcam-like source: one frame in, one mask out)::

    from runner import Streamer
    s = Streamer('exported/')
    ids = s.step(frame, mask=first_mask)     # frame [H, W, 3] uint8, mask [H, W] ids
    for frame in source:
      ids = s.step(frame)

Frames of another size than the artifact's are resized (bilinear) before the
step and the mask is resized back (nearest). A bfloat16 artifact's leaves are
stored as uint16 bits (viewed back as the program's input dtypes), and its
manifest's ``xla_flags`` (oneDNN kernels on CPUs, as the library compiles bf16)
are added to ``XLA_FLAGS`` unless set there, before jax starts. Needs jax,
numpy and Pillow (Pillow only for reading and writing image files).
"""

import argparse
import json
import os
import sys

import jax
from jax import export as jax_export
import numpy as np


class Streamer:
  """The artifact's step over a stream of frames, carrying its memory state."""

  def __init__(self, folder: str):
    with open(os.path.join(folder, 'manifest.json')) as f:
      self.manifest = json.load(f)
    if self.manifest.get('xla_flags'):
      _xla_flags(self.manifest['xla_flags'])
    with open(os.path.join(folder, 'step.bin'), 'rb') as f:
      self._exported = jax_export.deserialize(bytearray(f.read()))
    self._call = jax.jit(self._exported.call)
    self.size = tuple(self.manifest['frame_size'])
    self.max_objects = int(self.manifest['objects'])
    # The program's inputs in order: params (unless baked), state, then the frame's four.
    avals = iter(self._exported.in_avals)
    # Placed on the device explicitly, as the step's outputs are: the state fed back is
    # then the same jit signature as the first one (else frame 1 compiles a second time).
    self._device = jax.devices()[0]
    self._params = None
    if not self.manifest['baked_weights']:
      with np.load(os.path.join(folder, 'weights.npz')) as z:
        self._params = [jax.device_put(_as(z[f'p{i}'], next(avals)), self._device)
                        for i in range(len(z.files))]
    with np.load(os.path.join(folder, 'state.npz')) as z:
      self._state0 = [_as(z[f's{i}'], next(avals)) for i in range(len(z.files))]
    self.reset()

  def reset(self):
    """A new video: empty memory, no objects."""
    self._state = [jax.device_put(a, self._device) for a in self._state0]
    self.labels: list[int] = []       # object id of slot i
    self.index = 0

  def step(self, frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """frame [H, W, 3] uint8 RGB; mask [H, W] object ids (0 background) on any frame:
    adds its objects / replaces their prediction -> [H, W] uint8 ids."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
      raise ValueError(f'frame {self.index}: expected [H, W, 3] uint8, got {frame.shape} '
                       f'{frame.dtype}')
    own = frame.shape[:2]
    image = frame if own == self.size else _resize(frame, self.size, bilinear=True)
    annotation = np.zeros(self.size, np.uint8)
    given = np.zeros(self.max_objects, bool)
    if mask is not None:
      mask = np.asarray(mask).astype(np.uint8)
      if mask.shape != own:
        raise ValueError(f'mask of frame {self.index}: shape {mask.shape}, frame {own}')
      if own != self.size:
        mask = _resize(mask, self.size, bilinear=False)
      for label in (int(v) for v in np.unique(mask) if v):
        if label not in self.labels:
          if len(self.labels) == self.max_objects:
            raise ValueError(f'mask of frame {self.index}: object {label} exceeds the '
                             f'{self.max_objects} object slot(s) of this export')
          self.labels.append(label)
        slot = self.labels.index(label)
        annotation[mask == label] = slot + 1
        given[slot] = True
    args = (self._state, image, annotation, given, np.int32(self.index))
    if self._params is not None:
      args = (self._params,) + args
    self._state, slots = self._call(*args)
    self.index += 1
    lut = np.zeros(256, np.uint8)
    lut[1:len(self.labels) + 1] = self.labels
    ids = lut[np.asarray(slots)]
    return ids if own == self.size else _resize(ids, own, bilinear=False)


def _as(a: np.ndarray, aval) -> np.ndarray:
  """A stored leaf as the program takes it: bfloat16 is stored as its uint16 bits."""
  return a.view(aval.dtype) if a.dtype != aval.dtype and a.dtype == np.uint16 else a


def _xla_flags(flags: str) -> None:
  """The XLA flags the library compiled the step with (a bfloat16 step: oneDNN kernels
  on CPUs), added to ``XLA_FLAGS`` before jax starts its backend. A flag already in
  ``XLA_FLAGS`` (say ``...=false``) wins; once the backend has started it is too late."""
  current = os.environ.get('XLA_FLAGS', '')
  missing = [f for f in flags.split() if f.split('=')[0] not in current]
  if not missing:
    return
  try:
    from jax.extend import backend as jax_backend
    record = jax_backend.get_backend.cache_info()   # a call on record: the backend exists
  except (ImportError, AttributeError):
    record = None
  if record is not None and (record.hits or record.misses):
    print(f'runner: jax started before it could set XLA_FLAGS={" ".join(missing)} (as the '
          'library does for this step): set it before importing jax for the same kernels',
          file=sys.stderr)
    return
  os.environ['XLA_FLAGS'] = f'{current} {" ".join(missing)}'.strip()


def _resize(a: np.ndarray, size, bilinear: bool) -> np.ndarray:
  from PIL import Image
  img = Image.fromarray(a)
  return np.asarray(img.resize((size[1], size[0]),
                               Image.BILINEAR if bilinear else Image.NEAREST))


def _frames(folder: str) -> list[str]:
  names = sorted(n for n in os.listdir(folder)
                 if n.lower().endswith(('.jpg', '.jpeg', '.png')))
  if not names:
    raise SystemExit(f'error: {folder}: no .jpg/.png frames')
  return [os.path.join(folder, n) for n in names]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--artifact', default=os.path.dirname(os.path.abspath(__file__)))
  p.add_argument('--frames', required=True, help='folder of frames (sorted by name)')
  p.add_argument('--mask', required=True, help="the first frame's mask (PNG of ids)")
  p.add_argument('--out', required=True, help='folder for one PNG of ids per frame')
  args = p.parse_args(argv)
  from PIL import Image
  streamer = Streamer(args.artifact)
  first = np.asarray(Image.open(args.mask))
  if first.ndim == 3:
    raise SystemExit(f'error: {args.mask}: an RGB image, not a mask of object ids')
  os.makedirs(args.out, exist_ok=True)
  for t, path in enumerate(_frames(args.frames)):
    frame = np.asarray(Image.open(path).convert('RGB'))
    ids = streamer.step(frame, first if t == 0 else None)
    name = os.path.splitext(os.path.basename(path))[0] + '.png'
    Image.fromarray(ids).save(os.path.join(args.out, name))
  print(f'{t + 1} frames -> {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
