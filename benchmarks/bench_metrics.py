"""Time DAVIS J&F scoring per 480p frame per object: memvos_jax.metrics vs the official tool.

    python benchmarks/bench_metrics.py [--frames 60] [--official DIR --official_python PY]

Builds a 480x854 DAVIS-layout set in a temporary folder (ground truth from the
real bike/judo annotations in ../shared/data/real_clips when present, else
synthetic ellipses; moved over frames, perturbed predictions), then times
``evaluate_davis`` (reading PNGs included) and, when ``--official`` (a
davis2017-evaluation checkout) and ``--official_python`` (a venv with its
requirements) exist, the official ``DAVISEvaluation.evaluate`` on the same
folders (Python start-up and imports excluded). Both must agree on J&F.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from memvos_jax.metrics import evaluate_davis  # noqa: E402

H, W = 480, 854
REAL = pathlib.Path(__file__).resolve().parents[2] / 'shared/data/real_clips/Annotations'

OFFICIAL = '''
import json, sys, time
from davis2017.evaluation import DAVISEvaluation
ev = DAVISEvaluation(davis_root=sys.argv[1], task='semi-supervised', gt_set='val')
t0 = time.perf_counter()
res = ev.evaluate(sys.argv[2])
dt = time.perf_counter() - t0
import numpy as np
print(json.dumps({'seconds': dt, 'jf': (np.mean(res['J']['M']) + np.mean(res['F']['M'])) / 2}))
'''


def _objects() -> dict[str, list[np.ndarray]]:
  """Per sequence, the object masks of its first frame (480x854)."""
  def real(name):
    im = Image.open(REAL / name)
    return np.array(im.resize((W, H), Image.NEAREST) if im.size != (W, H) else im)
  if REAL.exists():
    bike = real('bike/00000.png')
    judo = [real('judo/00000.png') == 1, real('judo/00005.png') == 2,
            real('judo/00008.png') == 3, real('judo/00013.png') == 4]
    return {'bike': [bike == 1, bike == 2], 'judo': judo}
  yy, xx = np.mgrid[:H, :W]
  ell = lambda cy, cx, ry, rx: ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
  return {'bike': [ell(300, 450, 80, 90), ell(220, 470, 100, 50)],
          'judo': [ell(220, 420, 200, 100), ell(160, 660, 80, 35), ell(170, 790, 95, 38),
                   ell(220, 45, 80, 45)]}


def _save(path: pathlib.Path, labels: np.ndarray) -> None:
  im = Image.fromarray(labels.astype(np.uint8), mode='P')
  im.putpalette([c for i in range(256) for c in (i * 37 % 256, i * 91 % 256, i * 53 % 256)])
  im.save(path)


def build(root: pathlib.Path, frames: int) -> int:
  """Write davis/ and results/ under root; returns the number of scored frame-objects."""
  rng = np.random.default_rng(0)
  (root / 'davis' / 'ImageSets' / '2017').mkdir(parents=True)
  objs = _objects()
  (root / 'davis' / 'ImageSets' / '2017' / 'val.txt').write_text('\n'.join(objs) + '\n')
  scored = 0
  for seq, masks in objs.items():
    for sub in ('davis/Annotations/480p', 'davis/JPEGImages/480p', 'results'):
      (root / sub / seq).mkdir(parents=True)
    for t in range(frames):
      gt = np.zeros((H, W), np.uint8)
      pred = np.zeros((H, W), np.uint8)
      for k, m in enumerate(masks, 1):
        g = np.roll(m, (t // 2, t), (0, 1))
        gt[g] = k
        dy, dx = rng.integers(-6, 7, 2)
        pred[np.roll(g, (dy, dx), (0, 1))] = k
      _save(root / 'davis/Annotations/480p' / seq / f'{t:05d}.png', gt)
      _save(root / 'results' / seq / f'{t:05d}.png', pred)
      # the official tool only globs JPEGImages: empty files do
      (root / 'davis/JPEGImages/480p' / seq / f'{t:05d}.jpg').write_bytes(b'')
    scored += (frames - 2) * len(masks)
  return scored


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--frames', type=int, default=60)
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--official', default='/tmp/davis-official')
  p.add_argument('--official_python', default='/tmp/daviseval/bin/python')
  args = p.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    scored = build(root, args.frames)
    best = float('inf')
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      g, _ = evaluate_davis(str(root / 'davis'), str(root / 'results'), 'val')
      best = min(best, time.perf_counter() - t0)
    print(f'{scored} scored frame-objects at {H}x{W}')
    print(f'memvos_jax: {best:.3f} s total, {1e3 * best / scored:.3f} ms per frame per object '
          f'(J&F {g["J&F-Mean"]:.6f})')
    if os.path.isdir(args.official) and os.path.exists(args.official_python):
      env = dict(os.environ, PYTHONPATH=args.official)
      runs = []
      for _ in range(args.repeats):
        cmd = [args.official_python, '-c', OFFICIAL, str(root / 'davis'), str(root / 'results')]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
      off = min(x['seconds'] for x in runs)
      print(f'official:   {off:.3f} s total, {1e3 * off / scored:.3f} ms per frame per object '
            f'(J&F {runs[0]["jf"]:.6f}); speed-up x{off / best:.1f}')
    else:
      print(f'official tool not found ({args.official}, {args.official_python}): skipped')


if __name__ == '__main__':
  main()
