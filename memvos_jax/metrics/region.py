"""Region similarity J (mask IoU), as the official DAVIS ``db_eval_iou`` without void.

J = |pred & gt| / |pred | gt| per frame and object; a frame where both masks
are empty (union 0) scores 1. For label maps with many objects all of a frame's
objects come from one confusion matrix (a single ``bincount``); with a few,
per-object boolean counts are faster.
"""

import numpy as np

_FEW = 12   # up to this many objects, per-object boolean counts; above, one bincount per frame


def iou(gt_mask: np.ndarray, pred_mask: np.ndarray) -> np.ndarray | float:
  """J of binary masks [..., H, W]; returns a float for 2-D input, else an array."""
  gt, pred = np.asarray(gt_mask).astype(bool), np.asarray(pred_mask).astype(bool)
  if gt.shape != pred.shape:
    raise ValueError(f'annotation {gt.shape} and segmentation {pred.shape} shapes differ')
  inter = np.count_nonzero(gt & pred, axis=(-2, -1))
  union = np.count_nonzero(gt | pred, axis=(-2, -1))
  j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
  return float(j) if j.ndim == 0 else j


def region_similarity(gt_labels: np.ndarray, pred_labels: np.ndarray,
                      num_objects: int) -> np.ndarray:
  """J per object and frame: [num_objects, T] for label maps [T, H, W].

  Both maps must hold ids in 0..num_objects (0 = background).
  """
  gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
  if gt_labels.shape != pred_labels.shape or gt_labels.ndim != 3:
    raise ValueError('label maps must be [T, H, W] and equal: '
                     f'{gt_labels.shape} vs {pred_labels.shape}')
  n = num_objects + 1
  out = np.ones((num_objects, gt_labels.shape[0]))
  if num_objects == 0:
    return out
  code_type = np.uint16 if n * n <= 1 << 16 else np.int64
  for t in range(gt_labels.shape[0]):
    g, p = gt_labels[t], pred_labels[t]
    if num_objects <= _FEW:           # a few objects: boolean counts beat a histogram
      inter, area_g, area_p = np.zeros((3, num_objects), np.int64)
      for k in range(1, n):
        gk, pk = g == k, p == k
        inter[k - 1] = np.count_nonzero(gk & pk)
        area_g[k - 1], area_p[k - 1] = np.count_nonzero(gk), np.count_nonzero(pk)
    else:
      code = (g.astype(code_type) * code_type(n) + p.astype(code_type)).ravel()
      conf = np.bincount(code, minlength=n * n).reshape(n, n)   # [gt id, pred id]
      inter, area_g, area_p = np.diagonal(conf)[1:], conf.sum(axis=1)[1:], conf.sum(axis=0)[1:]
    union = area_g + area_p - inter
    out[:, t] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
  return out
