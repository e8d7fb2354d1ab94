"""One record per annotated frame: what the builders write and the readers decode.

Neither TensorFlow nor TFDS is needed here. A record (a TFDS example, the
features of ``builders.FEATURES``) is:

  sequence     str    the clip's name (a DAVIS / YouTube-VOS folder; static:
                      the image's path under the root, without suffix)
  frame_index  int32  its position among the clip's stored frames, 0..n-1
  frame_name   str    the frame file's stem ('00005': YouTube-VOS keeps every 5th)
  image        bytes  the frame file's own bytes (JPEG as it was: not re-encoded)
  mask         bytes  PNG, 8-bit grey: the object ids training reads [H, W]
                      (0 = background), already fitted to the frame's size

Only annotated frames are stored (the frames training samples from). The
records of a clip are consecutive and in frame order; the dataset's metadata
(``metadata.json``) lists the clips of each split in record order:
``{'clips': {split: [[name, num_frames], ...]}}``, so a reader finds clip
``c``'s frame ``j`` at record ``first(c) + j`` without scanning the files.
"""

import io
import pathlib

import numpy as np
from PIL import Image

from memvos_jax.data import sources
from memvos_jax.errors import InputError

IMAGE, MASK = 'image', 'mask'


def encode_ids(ids: np.ndarray) -> bytes:
  """[H, W] uint8 ids -> PNG bytes (8-bit grey: TFDS, PIL and TensorFlow all decode the ids)."""
  out = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(ids, np.uint8), mode='L').save(out, format='PNG')
  return out.getvalue()


def image_size(data: bytes, where) -> tuple[int, int]:
  """(H, W) from an encoded image's header (the pixels are not decoded)."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      w, h = im.size
  except Exception as e:  # PIL raises many types for broken files
    raise InputError(where, f'cannot read image: {e}') from e
  return h, w


def frame_record(sequence: str, index: int, frame_path, annotation_path) -> dict:
  """The record of one annotated frame (the mask's ids as ``sources.read_pair`` reads them)."""
  frame_path = pathlib.Path(frame_path)
  data = frame_path.read_bytes()
  ids = sources.fitted_ids(annotation_path, image_size(data, frame_path))   # [H, W]
  return {'sequence': sequence, 'frame_index': index, 'frame_name': frame_path.stem,
          IMAGE: data, MASK: encode_ids(ids)}


def static_record(sequence: str, image_path, mask_path) -> dict:
  """The record of one image+mask pair: ids as ``sources.read_ids`` reads the mask."""
  image_path = pathlib.Path(image_path)
  data = image_path.read_bytes()
  ids = sources.read_ids(mask_path)
  size = image_size(data, image_path)
  if ids.shape != size:
    raise InputError(mask_path, f'mask is {ids.shape[1]}x{ids.shape[0]} but the image is '
                     f'{size[1]}x{size[0]}')
  return {'sequence': sequence, 'frame_index': 0, 'frame_name': image_path.stem,
          IMAGE: data, MASK: encode_ids(ids)}


def decode_image(data: bytes, where) -> np.ndarray:
  """Encoded frame -> [H, W, 3] uint8 RGB (the decode of ``video_folder.read_frame``)."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      return np.asarray(im.convert('RGB'))
  except Exception as e:
    raise InputError(where, f'cannot decode the stored frame: {e}') from e


def decode_ids(data: bytes, where) -> np.ndarray:
  """Stored mask PNG -> [H, W] uint8 object ids."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      mode, ids = im.mode, np.asarray(im)
  except Exception as e:
    raise InputError(where, f'cannot decode the stored mask: {e}') from e
  if mode != 'L':
    raise InputError(where, f'stored mask is a {mode!r} PNG, not 8-bit grey ids')
  return ids


def shard_plan(sizes, target_bytes: int) -> list[range]:
  """Consecutive record ranges of about ``target_bytes`` each (at least one record)."""
  plan, start, total = [], 0, 0
  for k, size in enumerate(sizes):
    if k > start and total + size > target_bytes:
      plan.append(range(start, k))
      start, total = k, 0
    total += size
  if len(sizes) > start:
    plan.append(range(start, len(sizes)))
  return plan
