"""The exported streaming step beside the in-library one: frames/s, flat memory over a long video.

    python benchmarks/bench_export.py [--frames 1000] [--size 240x432] [--capacity 20]

Exports the shipped default model (``memvos_jax.export``), then in a child
process that imports nothing of memvos_jax runs the artifact's ``runner.Streamer``
over a synthetic video of ``--frames`` frames (two squares moving over a
texture, the first frame's mask given), recording the peak RSS at frames 100
and ``--frames``; then the same frames through ``memvos_jax.load().session``
in another child. Prints frames/s after the first frame (compilation apart)
and the RSS ratio, with the machine (``memvos_jax.apps.machine``).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent

_CHILD = r'''
import json, resource, sys, time
import numpy as np
mode, artifact, n, h, w, cap = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
yy, xx = np.mgrid[:h, :w]
base = (np.stack([np.sin(xx / 9.0), np.cos(yy / 11.0), np.sin((xx + yy) / 13.0)], -1) * 60 + 120)
def frame(t):
  img = base.copy(); ids = np.zeros((h, w), np.uint8)
  for label, y, x, c in ((1, 40 + (t % 60), 30 + (2 * t) % 200, (230, 40, 40)), (2, 120, 300 - (t % 150), (40, 40, 230))):
    img[y:y + 40, x:x + 40] = c; ids[y:y + 40, x:x + 40] = label
  return img.astype(np.uint8), ids
if mode == 'exported':
  sys.path.insert(0, artifact)
  from runner import Streamer
  s = Streamer(artifact)
  step = s.step
else:
  import memvos_jax
  s = memvos_jax.load(quiet=True).session((h, w), max_objects=2, memory_capacity=cap)
  step = s.step
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
marks = {}
t0 = time.perf_counter()
for t in range(n):
  img, ids = frame(t)
  step(img, ids if t == 0 else None)
  if t == 0:
    t1 = time.perf_counter()
  if t + 1 in (100, n):
    marks[t + 1] = rss()
t2 = time.perf_counter()
print('RESULT ' + json.dumps(dict(mode=mode, first_s=t1 - t0, fps=(n - 1) / (t2 - t1), rss_gb=marks,
                                  memvos_modules=sorted(m for m in sys.modules if m.startswith('memvos_jax')))))
'''


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--frames', type=int, default=1000)
  p.add_argument('--size', default='240x432')
  p.add_argument('--capacity', type=int, default=20)
  args = p.parse_args()
  h, w = (int(v) for v in args.size.split('x'))
  import memvos_jax
  from memvos_jax.apps import machine
  print(f'# {machine.describe()}')
  with tempfile.TemporaryDirectory() as tmp:
    art = os.path.join(tmp, 'artifact')
    m = memvos_jax.export(art, size=(h, w), objects=2, capacity=args.capacity)
    print(f'# artifact: ' + ', '.join(f'{k} {v / 2 ** 20:.1f} MB' for k, v in m['files'].items()))
    results = {}
    for mode in ('exported', 'library'):
      r = subprocess.run([sys.executable, '-c', _CHILD, mode, art, str(args.frames), str(h),
                          str(w), str(args.capacity)], capture_output=True, text=True, cwd=tmp)
      line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
      if r.returncode or not line:
        sys.exit(f'{mode} run failed:\n{r.stderr[-3000:]}')
      results[mode] = json.loads(line[0][len('RESULT '):])
  print(f'| step | first frame s (compile) | frames/s after it | peak RSS GB at 100 / '
        f'{args.frames} | ratio | memvos_jax modules imported |')
  print('| --- | --- | --- | --- | --- | --- |')
  for mode, r in results.items():
    a, b = r['rss_gb']['100'], r['rss_gb'][str(args.frames)]
    print(f"| {mode} | {r['first_s']:.1f} | {r['fps']:.2f} | {a:.3f} / {b:.3f} | {b / a:.3f} | "
          f"{len(r['memvos_modules'])} |")


if __name__ == '__main__':
  main()
