"""The DAVIS 2017 semi-supervised protocol on folders or in-memory masks.

Semantics of the official ``davis2017-evaluation`` (semi-supervised task):

* Objects are ids 1..N with N the largest id in the first ground-truth frame
  (255 = void is background here: the official semi-supervised path passes no
  void mask); ids above N in later ground-truth frames are background.
* The first and last annotated frames are not scored; result frames are read
  for the other ground-truth frame names only (``<seq>/<frame>.png``, where
  ``<frame>`` is the annotation file name with its extension and any other dots
  removed, as the official tool builds it).
* An object absent from the results scores as an empty mask (J = 0 where the
  truth is non-empty); result ids above N are refused.
* Per object: Mean, Recall and Decay of J and F; the global row averages over
  objects (see ``summary``).

Bad input (missing sequence or frame, unreadable or multi-channel PNG, size
mismatch, unknown object id, too few frames) raises ``InputError`` naming the
file, the sequence and the frame, where the official tool exits or crashes.
"""

import os

import numpy as np
from PIL import Image

from memvos_jax.errors import InputError
from memvos_jax.metrics.summary import GLOBAL_COLUMNS, global_row, object_row
from memvos_jax.metrics.boundary import DEFAULT_BOUND_TH, boundary_f
from memvos_jax.metrics.region import region_similarity


def read_label_png(path: str, what: str) -> np.ndarray:
  """A single-channel PNG as its integer ids (palette indices for indexed PNGs)."""
  try:
    with Image.open(path) as im:
      mode = im.mode
      arr = np.array(im)
  except FileNotFoundError:
    raise InputError(path, f'{what} not found') from None
  except (OSError, ValueError) as e:
    raise InputError(path, f'cannot read {what} ({e})') from None
  if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
    raise InputError(path, f'{what} must be a single-channel (indexed) PNG, got mode {mode}')
  return arr.astype(np.uint8) if arr.dtype == bool else arr


def frame_id(file_name: str) -> str:
  """The official frame id of an annotation file: its name minus extension, dots dropped."""
  return ''.join(file_name.split('.')[:-1])


def num_objects(first_gt: np.ndarray) -> int:
  """N: the largest id of the first ground-truth frame, void (255) ignored."""
  first = np.where(first_gt == 255, 0, first_gt)
  return int(max(first.max(initial=0), 0))


def _gt_labels(gt: np.ndarray, n: int) -> np.ndarray:
  """Ground truth with void (255), ids above n and negative ids set to background."""
  if gt.size == 0 or (gt.max() <= n and gt.min() >= 0 and (n < 255 or not (gt == 255).any())):
    return gt
  return np.where((gt > n) | (gt == 255) | (gt < 0), 0, gt)


def score_frames(gt_labels: np.ndarray, pred_labels: np.ndarray, n: int, fixed_decay: bool = False,
                 bound_th: float = DEFAULT_BOUND_TH) -> dict[int, dict]:
  """Score the evaluated frames [T, H, W] of one sequence for objects 1..n.

  Returns {object id: {'J': [T], 'F': [T], 'J-Mean', 'J-Recall', 'J-Decay',
  'F-Mean', 'F-Recall', 'F-Decay'}}. Ground-truth ids outside 1..n are
  background; a prediction id above n is a ``ValueError``.
  """
  gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
  if gt_labels.shape != pred_labels.shape or gt_labels.ndim != 3:
    raise ValueError(f'ground truth {gt_labels.shape} and prediction {pred_labels.shape} '
                     'must both be [T, H, W]')
  if pred_labels.size and pred_labels.min() < 0:
    pred_labels = np.where(pred_labels < 0, 0, pred_labels)
  for t in range(pred_labels.shape[0]):
    if pred_labels[t].max(initial=0) > n:
      bad = np.unique(pred_labels[t][pred_labels[t] > n]).tolist()
      raise ValueError(f'frame {t}: object id(s) {bad} not in the ground truth (ids 1..{n})')
  gt_labels = _gt_labels(gt_labels, n)
  j = region_similarity(gt_labels, pred_labels, n)
  f = boundary_f(gt_labels, pred_labels, n, bound_th)
  out = {}
  for k in range(1, n + 1):
    row = object_row(str(k), j[k - 1], f[k - 1], fixed_decay)
    del row['Sequence']
    out[k] = {'J': j[k - 1], 'F': f[k - 1], **row}
  return out


def score_sequence(gt_masks: np.ndarray, pred_masks: np.ndarray,
                   fixed_decay: bool = False) -> dict[int, dict]:
  """The semi-supervised protocol on one whole sequence held in memory.

  ``gt_masks`` and ``pred_masks`` are [T, H, W] id maps of all T annotated
  frames; objects are 1..max id of ``gt_masks[0]``; frames 0 and T-1 are not
  scored. Returns ``score_frames``' dict per object id.
  """
  gt_masks, pred_masks = np.asarray(gt_masks), np.asarray(pred_masks)
  if gt_masks.shape != pred_masks.shape or gt_masks.ndim != 3:
    raise ValueError(f'ground truth {gt_masks.shape} and prediction {pred_masks.shape} '
                     'must both be [T, H, W]')
  if gt_masks.shape[0] < 3:
    raise ValueError(f'{gt_masks.shape[0]} frames: the protocol needs >= 3 '
                     '(the first and last are not scored)')
  return score_frames(gt_masks[1:-1], pred_masks[1:-1], num_objects(gt_masks[0]), fixed_decay)


def read_sequence_list(davis_path: str, set_name: str) -> list[str]:
  """Sequence names of ``ImageSets/2017/<set>.txt`` (blank lines skipped)."""
  path = os.path.join(davis_path, 'ImageSets', '2017', f'{set_name}.txt')
  if not os.path.isfile(path):
    raise InputError(path, f'sequence list for set {set_name!r} not found')
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def load_ground_truth(davis_path: str, seq: str) -> tuple[list[str], np.ndarray]:
  """(frame ids, [T, H, W] ids) of ``Annotations/480p/<seq>/*.png``, sorted by name."""
  folder = os.path.join(davis_path, 'Annotations', '480p', seq)
  if not os.path.isdir(folder):
    raise InputError(folder, f'sequence {seq}: annotation folder not found')
  names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
  if len(names) < 3:
    raise InputError(folder, f'sequence {seq}: {len(names)} annotated frame(s); the protocol '
                     'needs >= 3 (the first and last are not scored)')
  masks = []
  for name in names:
    path = os.path.join(folder, name)
    m = read_label_png(path, f'annotation (sequence {seq}, frame {frame_id(name)})')
    if masks and m.shape != masks[0].shape:
      (h, w), (h0, w0) = m.shape, masks[0].shape
      raise InputError(path, f'sequence {seq} frame {frame_id(name)}: annotation is {w}x{h} '
                       f'but the first is {w0}x{h0}')
    masks.append(m)
  return [frame_id(n) for n in names], np.stack(masks)


def load_results(results_path: str, seq: str, frame_ids: list[str], shape: tuple[int, int],
                 n: int) -> np.ndarray:
  """[len(frame_ids), H, W] result ids, checked for presence, size and object ids."""
  folder = os.path.join(results_path, seq)
  if not os.path.isdir(folder):
    raise InputError(folder, f'sequence {seq}: results folder not found')
  masks = []
  for fid in frame_ids:
    path = os.path.join(folder, f'{fid}.png')
    where = f'sequence {seq} frame {fid}'
    if not os.path.isfile(path):
      raise InputError(path, f'{where}: result not found (results are <seq>/<frame>.png '
                       'indexed PNGs named like the annotations)')
    m = read_label_png(path, f'result ({where})')
    if m.shape != tuple(shape):
      raise InputError(path, f'{where}: result is {m.shape[1]}x{m.shape[0]} but the annotation '
                       f'is {shape[1]}x{shape[0]}')
    if m.max(initial=0) > n:
      bad = np.unique(m[m > n]).tolist()
      raise InputError(path, f'{where}: object id(s) {bad} not in the ground truth '
                       f'(its first frame has ids 1..{n})')
    masks.append(m)
  return np.stack(masks)


def evaluate_davis(davis_path: str, results_path: str, set_name: str = 'val',
                   sequences: list[str] | None = None, fixed_decay: bool = False,
                   progress=None) -> tuple[dict, list[dict]]:
  """Score a results folder against a DAVIS-layout ground truth (semi-supervised).

  ``sequences`` overrides ``ImageSets/2017/<set_name>.txt``. Returns the global
  row (``summary.GLOBAL_COLUMNS``) and one row per object (``Sequence`` =
  ``<seq>_<id>``, J-/F- Mean, Recall, Decay). ``progress`` wraps the sequence
  list (e.g. ``tqdm.tqdm``).
  """
  seqs = list(sequences) if sequences is not None else read_sequence_list(davis_path, set_name)
  rows = []
  for seq in (progress(seqs) if progress else seqs):
    frame_ids, gt = load_ground_truth(davis_path, seq)
    n = num_objects(gt[0])
    pred = load_results(results_path, seq, frame_ids[1:-1], gt.shape[1:], n)
    scores = score_frames(gt[1:-1], pred, n, fixed_decay)
    for k, s in scores.items():
      rows.append({'Sequence': f'{seq}_{k}', **{c: s[c] for c in GLOBAL_COLUMNS[1:]}})
  return global_row(rows), rows
