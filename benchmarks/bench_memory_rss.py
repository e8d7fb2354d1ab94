"""Peak RSS after 50 and after 400 streamed frames, for every model with a memory bank.

Each (model, frames) pair runs in its own child process: the model is loaded
(the random official-format fixture of ``../shared/fixtures`` converted at
load, else random weights), a ``StreamingSession`` with a bounded memory
(``--capacity`` frames, 8 by default; SAM 2: its ring of recent frames plus
one conditioning slot per object) is fed synthetic frames one at a time (a
textured square moving over noise, 2 objects annotated on frame 0), and the
child's peak RSS (``VmHWM``) is read at the end. Frames are made on the fly,
so nothing held grows with the length except what the model keeps: the
acceptance is RSS(400) / RSS(50) <= 1.1.

    python benchmarks/bench_memory_rss.py [--models stcn stm afb_urr sam2]
        [--size 96x160] [--frames 50 400] [--sam2-image-size 256] [--json OUT]

SAM 2 runs at ``--sam2-image-size`` (its network resizes every frame to it;
1024 for the released models, ~10 s a frame on 2 CPU cores) so that 400
frames finish in minutes; its memory layout does not depend on that size.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

import _common as common
from _common import REPO

CHECKPOINTS = {'stcn': 'stcn_random', 'stm': 'stm_random', 'afb_urr': 'afb_urr_random',
               'sam2': 'sam2_random'}


def child(args):
  """One run: load, stream ``args.frames[0]`` frames, print a JSON line."""
  sys.path.insert(0, str(REPO))
  from memvos_jax.api import Segmenter
  from memvos_jax.registry import build_model, load_variables

  model, n = args.models[0], args.frames[0]
  h, w = map(int, args.size.split('x'))
  config = common.load_config(model)
  if model == 'sam2':
    config.network.image_size = args.sam2_image_size
  if (common.FIXTURES / CHECKPOINTS[model] / 'recipe.json').exists():
    config.checkpoint = str(common.fixture_npz(args.workdir, CHECKPOINTS[model], f'{model}.npz'))
  net = build_model(config)
  seg = Segmenter(net, load_variables(config, net), memory_capacity=args.capacity)
  session = seg.session((h, w), max_objects=2)
  bg = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
  t0 = time.perf_counter()
  rss_after_first = None
  for t in range(n):
    session.step(common.moving_square_frame(t, h, w, bg),
                 common.moving_square_mask(h, w) if t == 0 else None)
    if t == 0:
      rss_after_first = common.peak_rss_gb()
  print('RESULT ' + json.dumps(dict(model=model, frames=n, size=args.size,
                                    capacity=args.capacity, weights=config.checkpoint or 'random',
                                    seconds=time.perf_counter() - t0,
                                    rss_after_frame0_gb=rss_after_first,
                                    peak_rss_gb=common.peak_rss_gb())))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--models', nargs='+', default=['stcn', 'stm', 'afb_urr', 'sam2'])
  ap.add_argument('--size', default='96x160')
  ap.add_argument('--frames', type=int, nargs='+', default=[50, 400])
  ap.add_argument('--capacity', type=int, default=8)
  ap.add_argument('--sam2-image-size', type=int, default=256)
  ap.add_argument('--workdir', default='/tmp/memvos_rss')
  ap.add_argument('--json')
  ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = ap.parse_args()
  pathlib.Path(args.workdir).mkdir(parents=True, exist_ok=True)
  if args.child:
    return child(args)
  rows = []
  for model in args.models:
    for n in args.frames:
      cmd = [sys.executable, __file__, '--child', '--models', model, '--frames', str(n),
             '--size', args.size, '--capacity', str(args.capacity),
             '--sam2-image-size', str(args.sam2_image_size), '--workdir', args.workdir]
      r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
      if r.returncode:
        sys.exit(f'{model} {n} frames failed:\n{r.stderr[-3000:]}')
      row = json.loads(r.stdout.split('RESULT ', 1)[1].splitlines()[0])
      rows.append(row)
      print(f'{model:8s} {n:4d} frames {args.size}: peak RSS {row["peak_rss_gb"]:.3f} GB '
            f'(after frame 0: {row["rss_after_frame0_gb"]:.3f}), {row["seconds"]:.0f} s',
            flush=True)
  print('\n| model | weights | frames | peak RSS GB | RSS(last) / RSS(first) |')
  print('| --- | --- | --- | --- | --- |')
  for model in args.models:
    mine = [r for r in rows if r['model'] == model]
    for r in mine:
      ratio = r['peak_rss_gb'] / mine[0]['peak_rss_gb']
      print(f'| {model} | {pathlib.Path(r["weights"]).name} | {r["frames"]} | '
            f'{r["peak_rss_gb"]:.3f} | {ratio:.3f} |')
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
  main()
