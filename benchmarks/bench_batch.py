"""Batched clips: clips/s of ``Segmenter.segment_batch`` (one vmapped scan) against one by one.

    .venv/bin/python benchmarks/bench_batch.py [--clips 4] [--frames 24] [--size 270x480]
        [--dtype float32|bfloat16] [--model default]

N clips of one frame size (the real ``bedroom`` frames resized, each clip
starting at another offset, with the synthetic 2-object first-frame mask of
``bench_stcn.py``) are segmented by the model (default: the shipped default
model) one by one and then as one batch. Each way runs twice in one process;
the second run is timed (no compilation). Prints clips/s and frames/s for
batch 1 and batch N and checks that the masks are the same.
"""

import argparse
import datetime
import os
import time

import numpy as np

import _common as common


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--clips', type=int, default=4)
  p.add_argument('--frames', type=int, default=24)
  p.add_argument('--size', default='270x480')
  p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  p.add_argument('--model', default='default')
  p.add_argument('--chunk', type=int, default=8)
  args = p.parse_args()
  h, w = (int(v) for v in args.size.split('x'))
  import memvos_jax  # noqa: E402  (after flag parsing)
  from PIL import Image  # noqa: E402
  names = common.real_frames('bedroom')
  need = args.frames + 4 * (args.clips - 1)
  frames = np.stack([np.asarray(Image.open(f).convert('RGB').resize((w, h), Image.BILINEAR))
                     for f in names[:need]])
  mask = common.synthetic_mask(h, w)
  clips = [(frames[4 * c:4 * c + args.frames], {0: mask}) for c in range(args.clips)]
  seg = memvos_jax.load(args.model, quiet=True, chunk=args.chunk, dtype=args.dtype)
  times, outs = {}, {}
  for way in ('one by one', f'batch of {args.clips}'):
    for _ in range(2):
      tic = time.perf_counter()
      outs[way] = ([seg.segment(*c) for c in clips] if way == 'one by one'
                   else seg.segment_batch(clips))
      times[way] = time.perf_counter() - tic
  one, batch = outs.values()
  same = np.mean(np.concatenate([(a == b).ravel() for a, b in zip(one, batch)]))
  print(f'# {datetime.datetime.now():%Y-%m-%d %H:%M}; {args.model} ({args.dtype}); '
        f'{args.clips} clips of {args.frames} frames at {h}x{w}, chunk {args.chunk}; '
        f'load average {os.getloadavg()}; second run of each timed; pixels equal batched and '
        f'one by one: {100 * same:.5f} %')
  rows = [[way, f'{t:.1f}', f'{args.clips / t:.3f}', f'{args.clips * args.frames / t:.2f}']
          for way, t in times.items()]
  print(common.markdown_table(['way', 'seconds', 'clips/s', 'frames/s'], rows))


if __name__ == '__main__':
  main()
