"""J, F and Mean/Recall/Decay on constructed masks with hand-computed answers."""

import math

import numpy as np
import pytest

from memvos_jax.metrics import boundary, davis, region, summary
from memvos_jax.metrics import (boundary_radius, decay_bins, disk, f_measure, iou, score_sequence,
                                seg2bmap, statistics)


def _mask(shape, *pixels):
  m = np.zeros(shape, bool)
  for p in pixels:
    m[p] = True
  return m


def _points(b):
  return set(zip(*map(lambda a: a.tolist(), np.nonzero(b))))


# ---------------------------------------------------------------- J

def test_iou_empty_empty_is_one_and_one_pixel_cases():
  e = np.zeros((5, 6), bool)
  assert iou(e, e) == 1.0
  assert iou(_mask((5, 6), (2, 3)), _mask((5, 6), (2, 3))) == 1.0
  assert iou(_mask((5, 6), (2, 3)), _mask((5, 6), (2, 4))) == 0.0
  assert iou(_mask((5, 6), (2, 3)), e) == 0.0
  a = np.zeros((6, 8), bool)
  b = np.zeros((6, 8), bool)
  a[0:2, 0:2] = True                          # 4 px, touches the top-left border
  b[0:2, 1:4] = True                          # 6 px, overlap 2 px
  assert iou(a, b) == pytest.approx(2 / 8)


def test_region_similarity_matches_per_object_iou():
  rng = np.random.default_rng(0)
  gt = rng.integers(0, 4, (3, 9, 11))
  pred = rng.integers(0, 4, (3, 9, 11))
  gt[1][gt[1] == 2] = 0
  pred[1][pred[1] == 2] = 0                   # object 2 absent from both on frame 1
  j = region.region_similarity(gt, pred, 3)
  for k in range(1, 4):
    for t in range(3):
      assert j[k - 1, t] == iou(gt[t] == k, pred[t] == k)
  assert j[1, 1] == 1.0


def test_region_similarity_many_objects_histogram_path():
  rng = np.random.default_rng(3)
  gt = rng.integers(0, 21, (2, 13, 9))
  pred = np.where(rng.random((2, 13, 9)) < 0.7, gt, rng.integers(0, 21, (2, 13, 9)))
  j = region.region_similarity(gt, pred, 20)
  for k in range(1, 21):
    for t in range(2):
      assert j[k - 1, t] == iou(gt[t] == k, pred[t] == k)


# ---------------------------------------------------------------- F

def test_disk_matches_skimage_definition():
  assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
  assert disk(2).tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1],
                              [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
  d = disk(2.5)                               # half-integer grid: 6x6, 4x4 core
  assert d.shape == (6, 6) and d[1:5, 1:5].all() and d.sum() == 16
  assert disk(8).shape == (17, 17) and disk(8).dtype == np.uint8


def test_boundary_radius():
  assert boundary_radius((480, 854)) == 8.0   # ceil(0.008 * 979.6)
  assert boundary_radius((240, 427)) == 4.0
  assert boundary_radius((12, 20)) == 1.0
  assert boundary_radius((480, 854), 3) == 3  # bound_th >= 1 is a radius in pixels
  assert boundary_radius((480, 854), 0.02) == 20.0


def test_seg2bmap_one_pixel_objects_and_borders():
  assert _points(seg2bmap(_mask((5, 6), (2, 3)))) == {(1, 2), (1, 3), (2, 2), (2, 3)}
  assert _points(seg2bmap(_mask((5, 6), (0, 0)))) == {(0, 0)}
  # bottom-right corner: the corner itself never counts, its west/north neighbours do
  assert _points(seg2bmap(_mask((5, 6), (4, 5)))) == {(3, 4), (3, 5), (4, 4)}
  full = np.ones((5, 6), bool)
  assert not seg2bmap(full).any()             # the image border is not a boundary
  right = np.zeros((5, 6), bool)
  right[1:4, 4:] = True                       # a block touching the right border
  assert _points(seg2bmap(right)) == {(0, 3), (0, 4), (0, 5), (1, 3), (2, 3), (3, 3),
                                      (3, 4), (3, 5)}


def test_seg2bmap_resize_uses_official_formula():
  seg = _mask((8, 8), (2, 3))
  small = seg2bmap(seg, width=4, height=4)    # (y, x) -> (y + 4 // 8, x + 4 // 8)
  assert small.shape == (4, 4) and _points(small) == {(1, 2), (1, 3), (2, 2), (2, 3)}
  with pytest.raises(ValueError):
    seg2bmap(_mask((8, 8), (6, 6)), width=4, height=4)


def test_f_measure_empty_and_full_conventions():
  e = np.zeros((20, 20), bool)
  dot = _mask((20, 20), (5, 5))
  assert f_measure(e, e) == 1.0               # no boundary on either side
  assert f_measure(e, dot) == 0.0             # precision 1, recall 0
  assert f_measure(dot, e) == 0.0             # precision 0, recall 1
  full = np.ones((20, 20), bool)
  assert f_measure(full, full) == 1.0         # full-image masks have no boundary
  assert f_measure(full, e) == 1.0
  assert f_measure(dot, full) == 0.0


def test_f_measure_hand_computed_one_pixel_objects():
  # 20x20: radius ceil(0.008 * 28.3) = 1, the disk is a cross.
  gt = _mask((20, 20), (2, 3))                # boundary (1,2) (1,3) (2,2) (2,3)
  pred = _mask((20, 20), (2, 5))              # boundary (1,4) (1,5) (2,4) (2,5)
  # (1,4) and (2,4) are one step from (1,3) and (2,3); the rest are 2 away: P = R = 1/2.
  assert f_measure(pred, gt) == pytest.approx(0.5)
  assert f_measure(pred, gt, bound_th=2) == 1.0
  assert f_measure(_mask((20, 20), (2, 9)), gt) == 0.0
  assert f_measure(gt, gt) == 1.0


def test_f_measure_border_objects():
  gt = np.zeros((20, 30), bool)
  gt[5:12, 25:] = True                        # touches the right border
  pred = gt.copy()
  pred[5:12, 24] = True                       # one column wider, within tolerance 1
  # gt boundary: rows 4 and 11 (x 24..29) + column 24 (y 5..10): 6 + 6 + 6 = 18 px (the
  # border column 29 only where the mask starts/ends); pred: rows 4/11 x 23..29 + column 23,
  # 7 + 7 + 6 px, each within one cross step of the other map: P = R = 1.
  assert f_measure(pred, gt) == 1.0
  pred2 = np.zeros((20, 30), bool)
  pred2[5:12, 20:] = True                     # left edge 5 px off: only rows 4/11 near
  bg, bp = _points(seg2bmap(gt)), _points(seg2bmap(pred2))
  p = sum(any(abs(y - v) + abs(x - u) <= 1 for v, u in bg) for y, x in bp) / len(bp)
  r = sum(any(abs(y - v) + abs(x - u) <= 1 for v, u in bp) for y, x in bg) / len(bg)
  assert f_measure(pred2, gt) == pytest.approx(2 * p * r / (p + r))


def _reference_f(fg, gt, radius):
  """Plain-loop F with cv2.dilate semantics (anchor size // 2, zero outside)."""
  k = disk(radius)
  a = k.shape[0] // 2

  def dilate(b):
    out = np.zeros_like(b)
    h, w = b.shape
    for i, j in zip(*np.nonzero(k)):
      dy, dx = i - a, j - a
      src = np.zeros_like(b)
      src[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
          b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
      out |= src
    return out

  bf, bg = seg2bmap(fg), seg2bmap(gt)
  nf, ng = bf.sum(), bg.sum()
  return boundary._f_from_counts(nf, ng, (bf & dilate(bg)).sum(), (bg & dilate(bf)).sum())


@pytest.mark.parametrize('bound_th', [0.008, 0.05, 2, 2.5, 3.3])
def test_f_measure_matches_plain_dilation(bound_th):
  rng = np.random.default_rng(1)
  for _ in range(30):
    h, w = rng.integers(3, 40, 2)
    g = rng.random((h, w)) < rng.random()
    p = np.roll(g, rng.integers(-3, 4, 2), (0, 1)) ^ (rng.random((h, w)) < 0.05)
    radius = boundary_radius((h, w), bound_th)
    assert f_measure(p, g, bound_th) == pytest.approx(_reference_f(p, g, radius), abs=1e-12)


def test_boundary_f_labels_matches_per_object():
  rng = np.random.default_rng(2)
  gt = rng.integers(0, 3, (2, 15, 17)) * (rng.random((2, 15, 17)) < 0.3)
  pred = np.roll(gt, 1, axis=2)
  f = boundary.boundary_f(gt, pred, 2)
  for k in (1, 2):
    for t in (0, 1):
      assert f[k - 1, t] == f_measure(pred[t] == k, gt[t] == k)


# ---------------------------------------------------------------- statistics

def test_recall_is_strictly_above_half():
  assert statistics(np.array([0.5, 0.51, 1.0, 0.0]))[1] == 0.5


def test_decay_bins_and_value():
  assert decay_bins(10) == [(0, 3), (2, 6), (5, 8), (7, 10)]
  v = np.arange(10, dtype=float)
  assert statistics(v)[2] == pytest.approx(np.mean([0, 1, 2]) - np.mean([7, 8, 9]))
  assert decay_bins(1) == [(0, 1)] * 4 and statistics(np.array([0.7]))[2] == 0.0


def test_decay_official_uint8_wrap_vs_fixed():
  # n <= 255: identical.
  assert decay_bins(255) == decay_bins(255, fixed_decay=True)
  # n = 256: last edge 255, the uint8 stop 255 + 1 wraps to 0 -> empty bin -> NaN.
  assert decay_bins(256) == [(0, 65), (64, 129), (128, 192), (191, 0)]
  assert decay_bins(256, fixed_decay=True) == [(0, 65), (64, 129), (128, 192), (191, 256)]
  v = np.ones(256)
  assert math.isnan(statistics(v)[2]) and statistics(v, fixed_decay=True)[2] == 0.0
  # n = 400: edges 299 and 399 wrap to 43 and 143: the "last quarter" is frames 43..143.
  assert decay_bins(400) == [(0, 101), (100, 201), (200, 44), (43, 144)]
  assert decay_bins(400, fixed_decay=True) == [(0, 101), (100, 201), (200, 300), (299, 400)]
  v = (np.arange(400) < 200).astype(float)    # perfect first half, zero second half
  assert statistics(v)[2] == 0.0
  assert statistics(v, fixed_decay=True)[2] == 1.0


def test_global_row_and_csv_format():
  rows = [summary.object_row('a_1', np.array([1.0, 0.0]), np.array([0.5, 0.5])),
          summary.object_row('a_2', np.array([0.25, 0.25]), np.array([1.0, 1.0]))]
  g = summary.global_row(rows)
  assert g['J-Mean'] == pytest.approx(0.375) and g['F-Mean'] == pytest.approx(0.75)
  assert g['J&F-Mean'] == pytest.approx(0.5625) and g['J-Recall'] == pytest.approx(0.25)
  g['F-Decay'] = float('nan')
  text = summary.csv_text([g], summary.GLOBAL_COLUMNS)
  assert text == ('J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n'
                  '0.562,0.375,0.250,0.500,0.750,0.500,\n')  # J-Decay (1 + 0) / 2


# ---------------------------------------------------------------- protocol

def test_score_sequence_protocol():
  t, h, w = 5, 20, 20
  gt = np.zeros((t, h, w), np.uint8)
  gt[:, 2:6, 2:6] = 1
  gt[:, 10:15, 10:15] = 2
  gt[2, 0:2, 0:2] = 9                         # id above N: background
  gt[3, 18:, 18:] = 255                       # void: background in this protocol
  pred = gt.copy()
  pred[pred > 2] = 0
  pred[2][pred[2] == 2] = 0                   # object 2 missing on frame 2
  pred[0] = 0                                 # first and last frames are not scored
  pred[-1] = 0
  s = score_sequence(gt, pred)
  assert sorted(s) == [1, 2]
  assert s[1]['J'].tolist() == [1.0, 1.0, 1.0] and s[1]['F-Mean'] == 1.0
  assert s[2]['J'].tolist() == [1.0, 0.0, 1.0] and s[2]['F'].tolist() == [1.0, 0.0, 1.0]
  assert s[2]['J-Mean'] == pytest.approx(2 / 3) and s[2]['J-Recall'] == pytest.approx(2 / 3)
  # an object id the first frame does not have is refused, not scored as zero
  bad = pred.copy()
  bad[2, 0, 0] = 3
  with pytest.raises(ValueError, match=r'frame 1: object id\(s\) \[3\]'):
    score_sequence(gt, bad)
  with pytest.raises(ValueError):
    score_sequence(gt[:2], pred[:2])


def test_num_objects_ignores_void_and_counts_gaps():
  first = np.array([[0, 1, 3], [255, 0, 0]], np.uint8)
  assert davis.num_objects(first) == 3        # ids 1..3: object 2 is empty everywhere
  assert davis.frame_id('00012.png') == '00012' and davis.frame_id('a.b.png') == 'ab'
