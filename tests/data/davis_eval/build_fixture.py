"""Rebuild the DAVIS-layout fixture of tests/test_davis_official.py and record the official numbers.

    python tests/data/davis_eval/build_fixture.py                 # davis/ and results/
    python tests/data/davis_eval/build_fixture.py --official DIR --official_python PY

Ground truth comes from the real annotations in ../shared/data/real_clips (bike,
judo; judo/00005.png is 480x853 and is resized to 854 with NEAREST), downscaled
to 240x427 and moved/eroded over frames; predictions are perturbed copies
(shifted, dilated, swapped ids, an object missing on some frames or a whole
sequence). Small synthetic sequences cover one-pixel and border objects, void,
non-contiguous ids, empty results and > 255 frames (official Decay wrap).

With ``--official`` (a checkout of davisvideochallenge/davis2017-evaluation)
and ``--official_python`` (a venv with its requirements), the official
``evaluation_method.py`` is run on a temporary copy (with dummy JPEGImages,
which it insists on) and its CSVs and stdout, plus full-precision per-object
values from its ``DAVISEvaluation``, are written to ``expected/``.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
REAL = HERE.parents[2].parent / 'shared' / 'data' / 'real_clips' / 'Annotations'
SETS = {'val': ['bike', 'judo', 'tiny', 'blank', 'full'], 'train': ['long400'],
        'test-dev': ['long258']}
H, W = 240, 427


def palette() -> list[int]:
  pal = []
  for i in range(256):
    r = g = b = 0
    c = i
    for j in range(8):
      r |= ((c >> 0) & 1) << (7 - j)
      g |= ((c >> 1) & 1) << (7 - j)
      b |= ((c >> 2) & 1) << (7 - j)
      c >>= 3
    pal += [r, g, b]
  return pal


def save(path: pathlib.Path, labels: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  im = Image.fromarray(labels.astype(np.uint8), mode='P')
  im.putpalette(palette()[:3 * (int(labels.max()) + 1)])   # short palettes keep the fixture small
  im.save(path, optimize=True)


def load_real(name: str) -> np.ndarray:
  im = Image.open(REAL / name)
  if im.size != (854, 480):
    im = im.resize((854, 480), Image.NEAREST)
  return np.array(im.resize((W, H), Image.NEAREST))


def shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
  out = np.zeros_like(a)
  h, w = a.shape
  ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
  xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
  out[yd, xd] = a[ys, xs]
  return out


def grow(m: np.ndarray, steps: int) -> np.ndarray:
  for _ in range(steps):
    m = m | shift(m, 1, 0) | shift(m, -1, 0) | shift(m, 0, 1) | shift(m, 0, -1)
  return m


def shrink(m: np.ndarray, steps: int) -> np.ndarray:
  return ~grow(~m, steps)


def paint(shape, masks: dict[int, np.ndarray]) -> np.ndarray:
  out = np.zeros(shape, np.uint8)
  for k, m in masks.items():
    out[m] = k
  return out


def seq_bike(t: int) -> tuple[np.ndarray, np.ndarray]:
  base = shift(load_real('bike/00000.png'), t, 2 * t)
  gt = {k: base == k for k in (1, 2)}
  if t % 2:
    gt[1] = shrink(gt[1], 1)
  pred = {k: shift(m, 1, -2) for k, m in gt.items()}
  if t in (2, 5):
    pred[2] = grow(pred[2], 2)
  if t in (3, 4):
    del pred[2]
  if t == 7:
    pred = {1: pred[2], 2: pred[1]}
  p = paint((H, W), pred)
  if t == 0:
    p[:3, :3] = 7                       # never read: the first frame is not scored
  return paint((H, W), gt), p


def seq_judo(t: int) -> tuple[np.ndarray, np.ndarray]:
  src = {1: load_real('judo/00000.png') == 1, 2: load_real('judo/00005.png') == 2,
         3: load_real('judo/00008.png') == 3, 4: load_real('judo/00013.png') == 4}
  gt = {1: shrink(src[1], t % 3), 2: shift(src[2], 0, 3 * t), 3: src[3],
        4: shift(src[4], t, -4 * t)}
  if 5 <= t <= 7:
    gt[3] = np.zeros_like(src[3])
  pred = {1: grow(gt[1], 1 + t % 2), 2: shift(gt[2], 2, 2), 3: shift(src[3], 1, 1)}
  if t in (5, 6):
    pred[3] = np.zeros_like(src[3])
  return paint((H, W), gt), paint((H, W), pred)      # object 4 never predicted


def seq_tiny(t: int) -> tuple[np.ndarray, np.ndarray]:
  h, w = 12, 20
  corners = [(0, 0), (0, 19), (11, 0), (11, 19), (5, 0), (0, 9), (11, 9), (5, 19), (5, 9), (3, 3)]
  gt = np.zeros((h, w), np.uint8)
  gt[corners[t]] = 1
  gt[9:12, 17:20] = 3                   # touches bottom and right
  gt[0:2, 12:15] = 255                  # void: background in the semi-supervised protocol
  if t in (3, 6):
    gt[6:8, 2:4] = 5                    # id above N (3): background
  pred = np.zeros((h, w), np.uint8)
  y, x = corners[t]
  off = [(0, 0), (1, 0), (0, 1), (5, 5), (0, 0), (1, 1), (0, 0), (2, 0), (0, 0), (0, 0)][t]
  pred[min(y + off[0], h - 1), min(x + off[1], w - 1)] = 1
  pred[9 - t % 3:12, 17 - t % 2:20] = 3
  if t == 4:
    pred[4:6, 4:6] = 2                  # object 2 is empty in the truth
  if t == 8:
    pred[:] = 0
  return gt, pred


def seq_blank(t: int) -> tuple[np.ndarray, np.ndarray]:
  im = Image.fromarray(shift(load_real('bike/00000.png'), t, t)).resize((107, 60), Image.NEAREST)
  gt = np.array(im)
  return gt, np.zeros_like(gt)


def seq_full(t: int) -> tuple[np.ndarray, np.ndarray]:
  h, w = 30, 40
  gt = np.ones((h, w), np.uint8)
  if t % 3 == 0:
    gt[10:20, 10:25] = 2
  pred = gt.copy()
  if t in (2, 5):
    pred[:, 30:] = 0
  if t == 4:
    pred[:] = 2
  return gt, pred


def seq_long(n: int):
  def frame(t: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = 16, 24
    gt = np.zeros((h, w), np.uint8)
    y, x = 2 + (t // 7) % 9, 2 + (t // 3) % 15
    gt[y:y + 5, x:x + 6] = 1
    err = int(4 * t / n)                # quality falls over time
    return gt, shift(gt, err % 3, err)
  return frame


BUILDERS = {'bike': (seq_bike, 10), 'judo': (seq_judo, 12), 'tiny': (seq_tiny, 10),
            'blank': (seq_blank, 8), 'full': (seq_full, 8),
            'long400': (seq_long(402), 402), 'long258': (seq_long(258), 258)}


def build(out: pathlib.Path) -> None:
  for sub in ('davis', 'results'):
    shutil.rmtree(out / sub, ignore_errors=True)
  for set_name, seqs in SETS.items():
    path = out / 'davis' / 'ImageSets' / '2017' / f'{set_name}.txt'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(s + '\n' for s in seqs))
  for seq, (fn, n) in BUILDERS.items():
    for t in range(n):
      gt, pred = fn(t)
      save(out / 'davis' / 'Annotations' / '480p' / seq / f'{t:05d}.png', gt)
      save(out / 'results' / seq / f'{t:05d}.png', pred)


DRIVER = '''
import json, sys
from davis2017.evaluation import DAVISEvaluation
ev = DAVISEvaluation(davis_root=sys.argv[1], task='semi-supervised', gt_set=sys.argv[2])
res = ev.evaluate(sys.argv[3])
out = {}
for m in ('J', 'F'):
  names = list(res[m]['M_per_object'])
  out[m] = {'objects': names, 'M': [float(x) for x in res[m]['M']],
            'R': [float(x) for x in res[m]['R']], 'D': [float(x) for x in res[m]['D']]}
json.dump(out, open(sys.argv[4], 'w'), indent=1)
'''


def record_official(out: pathlib.Path, official: str, python: str) -> None:
  expected = out / 'expected'
  expected.mkdir(exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp) / 'davis'
    shutil.copytree(out / 'davis', root)
    for seq_dir in (root / 'Annotations' / '480p').iterdir():
      jpg = root / 'JPEGImages' / '480p' / seq_dir.name
      jpg.mkdir(parents=True)
      for png in seq_dir.iterdir():
        Image.new('RGB', Image.open(png).size).save(jpg / (png.stem + '.jpg'))
    env = dict(os.environ, PYTHONPATH=official)
    for set_name in SETS:
      res = pathlib.Path(tmp) / f'results-{set_name}'
      shutil.copytree(out / 'results', res)
      cmd = [python, os.path.join(official, 'evaluation_method.py'), '--davis_path', str(root),
             '--results_path', str(res), '--task', 'semi-supervised', '--set', set_name]
      r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
      (expected / f'official_stdout-{set_name}.txt').write_text(r.stdout)
      for name in (f'global_results-{set_name}.csv', f'per-sequence_results-{set_name}.csv'):
        shutil.copy(res / name, expected / name)
      subprocess.run([python, '-c', DRIVER, str(root), set_name, str(out / 'results'),
                      str(expected / f'official_full-{set_name}.json')], env=env, check=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default=str(HERE))
  p.add_argument('--official', help='davis2017-evaluation checkout (records expected/)')
  p.add_argument('--official_python', default='python3')
  args = p.parse_args()
  out = pathlib.Path(args.out)
  build(out)
  if args.official:
    record_official(out, args.official, args.official_python)


if __name__ == '__main__':
  main()
