"""Checks and converts the arrays given to the Python API (frames, masks).

``Segmenter.segment`` and ``StreamingSession.step`` take what users have at
hand: uint8 RGB frames, float frames in [0, 1] (scaled to uint8), integer or
boolean masks. Anything else (another float range, a wrong shape, ids out of
0..255, a mask on a frame outside the clip, no object at all) raises
``InputError`` naming the argument, its shape or values, and what is expected.
"""

from collections.abc import Mapping

import numpy as np

from memvos_jax.errors import InputError


def _range(a: np.ndarray) -> str:
  return f'[{a.min():g}, {a.max():g}]' if a.size else '(empty)'


def to_uint8_rgb(frames, what: str = 'frames', ndim: int = 4) -> np.ndarray:
  """Frames [T, H, W, 3] (``ndim=4``) or one frame [H, W, 3] (``ndim=3``) as uint8.

  uint8 is taken as it is; floats in [0, 1] are scaled by 255 and rounded;
  integers in [0, 255] are cast. Other dtypes and ranges are refused.
  """
  a = np.asarray(frames)
  layout = '[T, H, W, 3]' if ndim == 4 else '[H, W, 3]'
  if a.ndim != ndim or a.shape[-1] != 3:
    raise InputError(what, f'shape {a.shape}, expected {layout} RGB')
  if a.size == 0:
    raise InputError(what, f'shape {a.shape} is empty, expected {layout} RGB')
  if a.dtype == np.uint8:
    return a
  if np.issubdtype(a.dtype, np.floating):
    if not np.isfinite(a).all():
      raise InputError(what, f'{a.dtype} frames contain NaN or infinite values')
    if a.min() >= 0 and a.max() <= 1:
      return np.rint(a * 255).astype(np.uint8)
    raise InputError(what, f'{a.dtype} values in {_range(a)}: give uint8 RGB (0..255) '
                     'or floats in [0, 1]')
  if np.issubdtype(a.dtype, np.integer):
    if a.min() >= 0 and a.max() <= 255:
      return a.astype(np.uint8)
    raise InputError(what, f'{a.dtype} values in {_range(a)}, expected 0..255')
  raise InputError(what, f'dtype {a.dtype}, expected uint8 RGB (or floats in [0, 1])')


def to_ids(mask, size, what: str) -> np.ndarray:
  """A mask [H, W] of object ids (0 = background) as uint8, checked against ``size``."""
  a = np.asarray(mask)
  h, w = size
  if a.shape != (h, w):
    extra = ' (an RGB image? give [H, W] object ids)' if a.ndim == 3 else ''
    raise InputError(what, f'shape {a.shape} but the frames are {h}x{w} (H x W){extra}')
  if a.dtype == bool:
    return a.astype(np.uint8)
  if np.issubdtype(a.dtype, np.floating):
    if not np.isfinite(a).all() or np.any(a != np.round(a)):
      raise InputError(what, f'{a.dtype} values that are not whole numbers (probabilities?); '
                       'give object ids 0..255 (0 = background)')
  elif not np.issubdtype(a.dtype, np.integer):
    raise InputError(what, f'dtype {a.dtype}, expected integer object ids')
  if a.size and (a.min() < 0 or a.max() > 255):
    raise InputError(what, f'ids in {_range(a)}, expected 0..255 (0 = background)')
  return a.astype(np.uint8)


def to_masks(masks, num_frames: int, size) -> dict[int, np.ndarray]:
  """{frame index: [H, W] ids} for a clip of ``num_frames`` frames of ``size``."""
  if not isinstance(masks, Mapping):
    raise InputError('masks', f'a {type(masks).__name__}, expected a dict '
                     '{frame index: [H, W] object ids}, e.g. {0: first_mask}')
  out = {}
  for key, mask in masks.items():
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
      raise InputError(f'masks[{key!r}]', 'the key must be a frame index (int)')
    if not 0 <= key < num_frames:
      raise InputError(f'masks[{key}]', f'frame {key} is outside the clip (0..{num_frames - 1})')
    out[int(key)] = to_ids(mask, size, f'masks[{key}]')
  if not any(m.any() for m in out.values()):
    raise InputError('masks', 'no object in any mask (every pixel is 0, background); give at '
                     'least one object id > 0 on the frame it first appears')
  return dict(sorted(out.items()))
