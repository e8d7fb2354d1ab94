"""Boundary F-measure (DAVIS "F"), numerically identical to the official tool.

The official ``davis2017-evaluation`` computes, per frame and object:

* boundary maps with ``seg2bmap`` (a pixel is on the boundary when it differs
  from its east, south or south-east neighbour; the last row compares only with
  the east neighbour, the last column only with the south one, the bottom-right
  pixel is never a boundary), so the map sits half a pixel towards the origin;
* a tolerance ``disk`` of radius ``ceil(bound_th * hypot(H, W))`` (``bound_th``
  < 1, default 0.008) or ``bound_th`` itself (>= 1), built like
  ``skimage.morphology.disk`` and applied like ``cv2.dilate`` (anchor at
  ``size // 2``, pixels outside the image are 0);
* precision = predicted boundary pixels within the dilated true boundary, recall
  the converse; F = 2PR / (P + R), with the official conventions for empty maps.

Instead of dilating whole images, the boundary pixels of one map are looked up
in row prefix sums of the other map's bounding box (one lookup per disk row),
so the cost follows the boundary length, not the image size. No OpenCV/skimage.
"""

import functools

import numpy as np

DEFAULT_BOUND_TH = 0.008


def disk(radius: float) -> np.ndarray:
  """``skimage.morphology.disk(radius)`` (strict radius): uint8, ``x^2 + y^2 <= r^2``.

  A non-integer radius keeps skimage's grid ``arange(-r, r + 1)`` (so 2.5 gives
  a 6x6 footprint on half-integer coordinates), as the official tool would.
  """
  grid = np.arange(-radius, radius + 1)
  x, y = np.meshgrid(grid, grid)
  return ((x ** 2 + y ** 2) <= radius ** 2).astype(np.uint8)


def boundary_radius(shape: tuple[int, int], bound_th: float = DEFAULT_BOUND_TH) -> float:
  """Tolerance radius in pixels: ``bound_th`` if >= 1, else ceil(bound_th * diagonal)."""
  if bound_th >= 1:
    return bound_th
  return float(np.ceil(bound_th * np.linalg.norm(np.asarray(shape[:2], np.float64))))


@functools.lru_cache(maxsize=64)
def _disk_rows(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The disk as rows of offsets from the cv2 anchor: (dy, dx_lo, dx_hi) per non-empty row."""
  k = disk(radius)
  ay, ax = k.shape[0] // 2, k.shape[1] // 2
  dys, los, his = [], [], []
  for i in range(k.shape[0]):
    cols = np.flatnonzero(k[i])
    if cols.size == 0:
      continue
    assert cols[-1] - cols[0] + 1 == cols.size, 'disk rows are contiguous'
    dys.append(i - ay)
    los.append(cols[0] - ax)
    his.append(cols[-1] - ax)
  return np.array(dys, np.int64), np.array(los, np.int64), np.array(his, np.int64)


def seg2bmap(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
  """Official ``_seg2bmap``: one-pixel-wide boundary map of a binary mask.

  ``width``/``height`` (never used by the official F) map the boundary onto a
  grid of that size with the official formula ``(y, x) -> (y + height // h,
  x + width // h)`` (sic: the official code's, odd as it is). Its size assertion
  is mangled by operator precedence; where it fails (``width > w | height``,
  a ``TypeError`` there) or a target falls outside the map (``IndexError``
  there) this raises ``ValueError``.
  """
  seg = np.asarray(seg).astype(bool)
  if seg.ndim != 2:
    raise ValueError(f'seg2bmap needs a 2-D mask, got shape {seg.shape}')
  h, w = seg.shape
  b = np.zeros_like(seg)
  if h == 0 or w == 0:
    return b
  b[:-1, :-1] = (seg[:-1, :-1] != seg[:-1, 1:]) | (seg[:-1, :-1] != seg[1:, :-1]) \
      | (seg[:-1, :-1] != seg[1:, 1:])
  b[-1, :-1] = seg[-1, :-1] != seg[-1, 1:]
  b[:-1, -1] = seg[:-1, -1] != seg[1:, -1]
  b[-1, -1] = False
  width = w if width is None else width
  height = h if height is None else height
  if width == w and height == h:
    return b
  if width > (w | height):
    # Official: `width > w | height > h | ...` chains into `h | float` -> TypeError.
    raise ValueError(f"Can't convert {w}x{h} seg to {width}x{height} bmap (official TypeError)")
  ys, xs = np.nonzero(b)
  ys = ys + int(np.floor(height / h))
  xs = xs + int(np.floor(width / h))
  if ys.size and (ys.max() >= height or xs.max() >= width):
    raise ValueError(f'boundary pixel maps outside the {width}x{height} bmap (official IndexError)')
  bmap = np.zeros((height, width))
  bmap[ys, xs] = 1
  return bmap


def _boundary_points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(ys, xs) of ``seg2bmap(mask)``, computed on the mask's bounding box only.

  The crop keeps one empty row/column above/left (their pixels see the object
  as south/east neighbours) and below/right (they are boundary-free either way,
  so seg2bmap's last-row/column rules give the full-image answer).
  """
  rows = np.flatnonzero(mask.any(axis=1))
  if rows.size == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  cols = np.flatnonzero(mask.any(axis=0))
  y0, x0 = max(rows[0] - 1, 0), max(cols[0] - 1, 0)
  y1, x1 = min(rows[-1] + 2, mask.shape[0]), min(cols[-1] + 2, mask.shape[1])
  ys, xs = np.nonzero(seg2bmap(mask[y0:y1, x0:x1]))
  return ys + y0, xs + x0


def _count_matched(ay: np.ndarray, ax: np.ndarray, by: np.ndarray, bx: np.ndarray,
                   rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
  """How many points a are covered by ``cv2.dilate(map of points b, disk)``.

  a is covered when some b lies at a + (dy, dx) with dx in [lo, hi] of disk row dy.
  """
  if ay.size == 0 or by.size == 0:
    return 0
  dys, los, his = rows
  m = int(max(np.abs(dys).max(), np.abs(los).max(), np.abs(his).max()))
  y0, x0 = by.min(), bx.min()
  hb, wb = int(by.max() - y0 + 1), int(bx.max() - x0 + 1)
  # Only a within m of b's box can be covered; pad the box by 2m so lookups stay inside.
  ya, xa = ay - y0 + 2 * m, ax - x0 + 2 * m
  keep = (ya >= m) & (ya < hb + 3 * m) & (xa >= m) & (xa < wb + 3 * m)
  if not keep.any():
    return 0
  ya, xa = ya[keep], xa[keep]
  hd, wd = hb + 4 * m, wb + 4 * m
  dense = np.zeros((hd, wd), np.int32)
  dense[by - y0 + 2 * m, bx - x0 + 2 * m] = 1
  prefix = np.zeros((hd, wd + 1), np.int32)
  np.cumsum(dense, axis=1, out=prefix[:, 1:])
  flat = prefix.ravel()
  base = ((ya[:, None] + dys[None, :]) * (wd + 1) + xa[:, None])
  hits = flat[base + (his + 1)[None, :]] - flat[base + los[None, :]]
  return int(np.count_nonzero((hits > 0).any(axis=1)))


def _f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
  """Official precision/recall conventions for empty boundary maps, then F."""
  if n_fg == 0 and n_gt > 0:
    precision, recall = 1.0, 0.0
  elif n_fg > 0 and n_gt == 0:
    precision, recall = 0.0, 1.0
  elif n_fg == 0 and n_gt == 0:
    precision, recall = 1.0, 1.0
  else:
    precision, recall = fg_match / float(n_fg), gt_match / float(n_gt)
  if precision + recall == 0:
    return 0.0
  return 2 * precision * recall / (precision + recall)


def f_measure_points(fg_pts: tuple[np.ndarray, np.ndarray], gt_pts: tuple[np.ndarray, np.ndarray],
                     radius: float) -> float:
  """F from boundary pixel coordinates (as returned for ``seg2bmap`` maps)."""
  rows = _disk_rows(float(radius))
  fg_match = _count_matched(*fg_pts, *gt_pts, rows)
  gt_match = _count_matched(*gt_pts, *fg_pts, rows)
  return _f_from_counts(fg_pts[0].size, gt_pts[0].size, fg_match, gt_match)


def f_measure(foreground_mask: np.ndarray, gt_mask: np.ndarray,
              bound_th: float = DEFAULT_BOUND_TH) -> float:
  """Official ``f_measure`` (no void pixels) of one binary prediction vs. one binary truth."""
  fg, gt = np.asarray(foreground_mask).astype(bool), np.asarray(gt_mask).astype(bool)
  if fg.shape != gt.shape or fg.ndim != 2:
    raise ValueError(f'masks must be 2-D and equal in shape: {fg.shape} vs {gt.shape}')
  radius = boundary_radius(fg.shape, bound_th)
  return f_measure_points(_boundary_points(fg), _boundary_points(gt), radius)


def boundary_f(gt_labels: np.ndarray, pred_labels: np.ndarray, num_objects: int,
               bound_th: float = DEFAULT_BOUND_TH) -> np.ndarray:
  """F per object and frame: [num_objects, T] for label maps [T, H, W] (ids 1..num_objects)."""
  gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
  if gt_labels.shape != pred_labels.shape or gt_labels.ndim != 3:
    raise ValueError('label maps must be [T, H, W] and equal: '
                     f'{gt_labels.shape} vs {pred_labels.shape}')
  radius = boundary_radius(gt_labels.shape[1:], bound_th)
  out = np.ones((num_objects, gt_labels.shape[0]))
  for t in range(gt_labels.shape[0]):
    g_t, p_t = gt_labels[t], pred_labels[t]
    for k in range(1, num_objects + 1):
      out[k - 1, t] = f_measure_points(_boundary_points(p_t == k), _boundary_points(g_t == k),
                                       radius)
  return out
