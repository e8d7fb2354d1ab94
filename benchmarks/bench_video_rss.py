"""Peak RSS of ``python -m memvos_jax segment`` on a 200- vs a 2,000-frame video.

A synthetic mp4 (a textured square moving over noise, 2 objects) is made at
``--size`` and segmented with a bounded memory (capacity 8) by the CLI in a
child process; the child's peak RSS (ru_maxrss) and wall time are reported.
Frames are decoded lazily and outputs streamed, so RSS should not grow with
length: the acceptance is 2,000-frame RSS within 10% of 200-frame RSS.

    python benchmarks/bench_video_rss.py [--size 96x160] [--frames 200 2000]
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from _common import REPO, moving_square_frame, moving_square_mask

sys.path.insert(0, str(REPO))

from memvos_jax.apps import visualize  # noqa: E402
from memvos_jax.data.video_folder import davis_palette  # noqa: E402


def make_video(path, n, h, w):
  rng = np.random.default_rng(0)
  bg = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
  with visualize.OverlayVideoWriter(str(path), 25.0) as out:
    for t in range(n):
      out.write(moving_square_frame(t, h, w, bg))
  im = Image.fromarray(moving_square_mask(h, w), mode='P')
  im.putpalette(davis_palette())
  return im


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--size', default='96x160')
  ap.add_argument('--frames', type=int, nargs='+', default=[200, 2000])
  args = ap.parse_args()
  h, w = map(int, args.size.split('x'))
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for n in args.frames:
      video = pathlib.Path(tmp, f'v{n}.mp4')
      make_video(video, n, h, w).save(pathlib.Path(tmp, 'mask.png'))
      cmd = [sys.executable, '-c', 'import resource, sys; from memvos_jax.apps.segment import main; '
             'rc = main(sys.argv[1:]); '
             'print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)',
             'segment', '--video', str(video), '--mask', str(pathlib.Path(tmp, 'mask.png')),
             '--out', str(pathlib.Path(tmp, f'out{n}')), '--capacity', '8', '--chunk', '8']
      t0 = time.perf_counter()
      r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
      dt = time.perf_counter() - t0
      if r.returncode:
        sys.exit(r.stderr[-3000:])
      kb = int(r.stdout.split('PEAK_RSS_KB')[1].split()[0])
      rows.append((n, kb / 1e6, dt))
      print(f'{n} frames {h}x{w}: peak RSS {kb / 1e6:.3f} GB, {dt:.0f} s ({n / dt:.1f} frames/s incl. start-up)')
  if len(rows) >= 2:
    print(f'RSS ratio {rows[-1][0]}/{rows[0][0]} frames: {rows[-1][1] / rows[0][1]:.3f}')


if __name__ == '__main__':
  main()
