"""Training-data throughput: clips/s from DAVIS folders vs their ArrayRecord (TFDS) build.

    .venv/bin/python benchmarks/bench_data.py [--clips 32] [--repeats 2] [--workdir DIR] [--crop 384]

Builds ``davis_vos/2016`` (``../shared/data/davis2016_train``, 30 clips, 2,079
annotated 854x480 frames) and ``davis_vos/2017`` (``davis2017_extra``) into
``--workdir`` (reused when there), then reads the same training stream from
the folders (``data.davis_root`` + ``davis_extra_roots``) and from the build
(``data.davis_tfds``), with 1 process and with 2 processes at once (each its
own shard of every global batch, ``make_dataset(config, k, 2)``), each
process with no grain threads (one core each). Two measures:

  read     ``source.load`` of 3 frames (the max-skip rule) of random clips:
           file/record reads + JPEG and mask decoding only
  samples  whole training samples (``make_iterator``): the above plus the
           random crop/affine augmentation at ``--crop`` and object selection

Frames at native size (``frame_short_side = 0``: nothing memoised), both
storages in the page cache (read once before timing). clips/s of 2 processes
= all their clips / the slower one's wall time; the best of ``--repeats``
interleaved rounds (a busy machine's spikes). Prints the machine
(``machine.describe()``, load average included) and a markdown table.
"""

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import _common as common

DAVIS16 = common.SHARED / 'data' / 'davis2016_train'
DAVIS17 = common.SHARED / 'data' / 'davis2017_extra'


def _config(storage: str, data_dir: str, crop: int):
  from memvos_jax.configs import stcn
  c = stcn.get_config('stage3')
  with c.unlocked():
    c.training.batch_size = 4
    c.training.crop_size = crop
    c.data.threads = 0
    if storage == 'folders':
      c.data.davis_root, c.data.davis_extra_roots = str(DAVIS16), str(DAVIS17)
    else:
      c.data.tfds_dir, c.data.davis_tfds = data_dir, 'davis_vos/2016,davis_vos/2017'
  return c


def child(args) -> None:
  """One process: its shard of ``--clips`` clips per measure; prints ``RESULT <json>``."""
  import numpy as np
  from memvos_jax.data import sampling, sources
  c = _config(args.storage, args.data_dir, args.crop)
  ds, _ = sampling.make_dataset(c, args.shard, args.procs)
  davis = [s for s in sampling.build_sources(c)[0] if isinstance(s, sources.VideoSource)]
  rng = np.random.default_rng([7, args.shard])
  mine = args.clips // args.procs
  picks = []
  for _ in range(mine + 4):   # 4 warm-up clips (readers opened, first decode)
    s = davis[int(rng.integers(len(davis)))]
    i = int(rng.integers(len(s)))
    picks.append((s, i, sampling.sample_frames(rng, s.num_frames(i), 15, 3)))
  for s, i, idx in picks[:4]:
    s.load(i, idx)
  tic = time.perf_counter()
  for s, i, idx in picks[4:]:
    s.load(i, idx)
  read_s = time.perf_counter() - tic
  steps = max(1, mine // (c.training.batch_size // args.procs))
  it = sampling.make_iterator(ds, c, 0)
  next(it)                    # warm-up batch
  tic = time.perf_counter()
  n = 0
  for _ in range(steps):
    n += len(next(it)['index'])
  samples_s = time.perf_counter() - tic
  common.emit_result({'read_clips': mine, 'read_s': read_s, 'sample_clips': n,
                      'samples_s': samples_s})


def _build(data_dir: pathlib.Path) -> dict:
  from memvos_jax.data.tfds_vos import builders
  out = {}
  for name, root in (('davis_vos/2016', DAVIS16), ('davis_vos/2017', DAVIS17)):
    tic = time.perf_counter()
    built = not builders.builder(name, data_dir=data_dir).is_prepared()
    b = builders.build(name, root, data_dir)
    split = b.info.splits['train']
    out[name] = {'seconds': time.perf_counter() - tic, 'frames': split.num_examples,
                 'mb': split.num_bytes / 2**20, 'files': split.num_shards, 'built': built}
  return out


def _warm(paths) -> float:
  """Reads every file under ``paths`` once (page cache); returns the MB read."""
  total = 0
  for p in paths:
    for f in pathlib.Path(p).rglob('*'):
      if f.is_file():
        total += len(f.read_bytes())
  return total / 2**20


def _run(storage, procs, args, data_dir):
  cmd = [sys.executable, __file__, '--child', '--storage', storage, '--data_dir', str(data_dir),
         '--procs', str(procs), '--clips', str(args.clips), '--crop', str(args.crop)]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  ps = [subprocess.Popen(cmd + ['--shard', str(k)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env) for k in range(procs)]
  results = []
  for p in ps:
    out, err = p.communicate(timeout=args.timeout)
    lines = [l for l in out.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not lines:
      common.die('bench_data', f'{storage} x{procs} failed (exit {p.returncode}):\n{err[-4000:]}')
    results.append(json.loads(lines[-1][len('RESULT '):]))
  read = sum(r['read_clips'] for r in results) / max(r['read_s'] for r in results)
  samples = sum(r['sample_clips'] for r in results) / max(r['samples_s'] for r in results)
  return read, samples


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--clips', type=int, default=32, help='clips per measure (all processes)')
  p.add_argument('--repeats', type=int, default=2, help='rounds; the best is reported')
  p.add_argument('--crop', type=int, default=384, help='training crop (samples measure)')
  p.add_argument('--workdir', default='', help='keep the build here (default: a temp dir)')
  p.add_argument('--timeout', type=float, default=900)
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--storage', default='folders', help=argparse.SUPPRESS)
  p.add_argument('--data_dir', default='', help=argparse.SUPPRESS)
  p.add_argument('--procs', type=int, default=1, help=argparse.SUPPRESS)
  p.add_argument('--shard', type=int, default=0, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return child(args)
  common.check_shared('bench_data', [DAVIS16, DAVIS17])
  with tempfile.TemporaryDirectory(prefix='bench_data_') as tmp:
    data_dir = pathlib.Path(args.workdir or tmp) / 'tfds'
    built = _build(data_dir)
    warm = {'folders': _warm([DAVIS16, DAVIS17]), 'arrayrecord': _warm([data_dir])}
    runs = {}
    for r in range(args.repeats):     # rounds interleaved: a load spike hits one run, not a row
      for procs in (1, 2):
        for storage in ('folders', 'arrayrecord'):
          read, samples = _run(storage, procs, args, data_dir)
          runs.setdefault((storage, procs), []).append((read, samples))
          print(f'round {r + 1}: {storage} x{procs}: read {read:.1f} clips/s, '
                f'samples {samples:.1f} clips/s', flush=True)
    rows = [[storage, str(procs), f'{max(x[0] for x in v):.1f}', f'{max(x[1] for x in v):.1f}']
            for (storage, procs), v in runs.items()]
  print()
  print(f'# {datetime.datetime.now():%Y-%m-%d %H:%M}; {common.machine.describe()}')
  for name, b in built.items():
    how = (f'built in {b["seconds"]:.1f} s ({b["frames"] / b["seconds"]:.0f} frames/s)'
           if b['built'] else 'reused')
    print(f'# {name}: {b["frames"]} frames, {b["mb"]:.1f} MB in {b["files"]} file(s), {how}')
  print(f'# page cache warmed: folders {warm["folders"]:.0f} MB, '
        f'ArrayRecord {warm["arrayrecord"]:.0f} MB; {args.clips} clips per measure, '
        f'crop {args.crop}; best of {args.repeats} rounds')
  print(common.markdown_table(['storage', 'processes', 'read clips/s', 'samples clips/s'], rows))


if __name__ == '__main__':
  main()
