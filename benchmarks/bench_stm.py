"""Speed and peak-memory benchmark of STM inference (``memvos_jax.pipeline``).

Usage::

  python benchmarks/bench_stm.py                       # all cases
  python benchmarks/bench_stm.py --case bike480        # one case
  python benchmarks/bench_stm.py --json results.json   # also write JSON

Every case runs in its own subprocess (peak RSS = that case's ``VmHWM``).
Weights are the random ``stm_random`` fixture rebuilt as .npz without torch,
loaded through ``configs/stm.py`` (``pipeline.build_model``/``load_variables``).

Cases (the official figures' settings, ``../shared/BASELINE.md`` STM rows):
  bike480  the real 4-frame 480x854 clip ``bike`` (2 objects), mem_every 5,
           chunk 4. One chunk, so it runs twice with the same ClipSegmenter:
           frames/s = 4 / wall time of the second run (no compile).
  judo480  the real 16-frame 480x854 clip ``judo`` with its first-frame
           annotation only (1 object, as the official eval_DAVIS.py reads
           it), mem_every 5, chunk 4; frames/s = steady frames (all but the
           first chunk) / their wall time.
Our frames/s include JPEG decoding (a background prefetch thread); the
official figures exclude it.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
REAL = SHARED / 'data' / 'real_clips'
FIXTURES = SHARED / 'fixtures'

# ../shared/BASELINE.md, STM rows: official frames/s and peak RSS (GB).
OFFICIAL = {'bike480': dict(fps=0.072, rss_gb=1.86), 'judo480': dict(fps=0.088, rss_gb=2.1)}
CASES = {
    'bike480': dict(clip='bike', frames=4, chunk=4, repeat=True),
    'judo480': dict(clip='judo', frames=16, chunk=4, repeat=False),
}
MEM_EVERY = 5


def peak_rss_gb():
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) * 1024 / 1e9
  return float('nan')


def prepare(work):
  """Weights (.npz) and generic-layout clips (first-frame annotation only) in ``work``."""
  sys.path.insert(0, str(FIXTURES))
  import make_checkpoint  # noqa: E402  (from ../shared/fixtures)
  npz = work / 'stm.npz'
  np.savez(npz, **make_checkpoint.build_state('stm_random'))
  for case in CASES.values():
    src, name = REAL / 'JPEGImages' / case['clip'], case['clip']
    img_dir, ann_dir = work / 'clips' / 'JPEGImages' / name, work / 'clips' / 'Annotations' / name
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    for f in sorted(src.glob('*.jpg'))[:case['frames']]:
      shutil.copyfile(f, img_dir / f.name)
    shutil.copyfile(REAL / 'Annotations' / name / '00000.png', ann_dir / '00000.png')
  return npz, work / 'clips'


def run_child(case, npz, root):
  """Runs one case in this process and prints ``RESULT <json>``."""
  sys.path.insert(0, str(REPO))
  import jax  # noqa: E402
  from memvos_jax import pipeline  # noqa: E402
  from memvos_jax.data import video_folder  # noqa: E402
  import importlib.util  # noqa: E402
  spec = importlib.util.spec_from_file_location('stm_config', REPO / 'configs' / 'stm.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.checkpoint = str(npz)
  c = CASES[case]
  model = pipeline.build_model(config)
  variables = pipeline.load_variables(config, model)
  seg = pipeline.ClipSegmenter(model, variables, mem_every=MEM_EVERY, chunk=c['chunk'])
  clip = video_folder.find_clips(root, [c['clip']])[0]
  ann = video_folder.read_annotations(clip)
  result = seg.segment(clip, out_dir=None)
  if c['repeat']:
    tic = time.perf_counter()
    again = seg.segment(clip, out_dir=None)
    frames, seconds = again.frames, time.perf_counter() - tic
  else:
    frames, seconds = result.steady_frames, result.seconds
  print('RESULT ' + json.dumps(dict(
      case=case, clip=c['clip'], frames=result.frames, size=list(ann.size),
      objects=len(ann.labels), mem_every=MEM_EVERY, chunk=c['chunk'],
      compile_seconds=result.compile_seconds, steady_frames=frames, steady_seconds=seconds,
      fps=frames / seconds if seconds > 0 else None, trace_count=seg.trace_count,
      peak_rss_gb=peak_rss_gb(), jax=jax.__version__, backend=jax.default_backend())),
      flush=True)


def table(results):
  lines = ['| case | clip (frames, HxW, objects) | compile s | frames/s | peak RSS GB '
           '| official frames/s | ours/official | official RSS GB |',
           '| --- | --- | --- | --- | --- | --- | --- | --- |']
  for r in results:
    if 'error' in r:
      lines.append(f"| {r['case']} | FAILED: {r['error']} | | | | | | |")
      continue
    off = OFFICIAL[r['case']]
    h, w = r['size']
    lines.append(
        f"| {r['case']} | {r['clip']} ({r['frames']}, {h}x{w}, {r['objects']}) "
        f"| {r['compile_seconds']:.1f} | {r['fps']:.3f} | {r['peak_rss_gb']:.2f} "
        f"| {off['fps']:.3f} | {r['fps'] / off['fps']:.1f}x | {off['rss_gb']:.2f} |")
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', action='append', choices=sorted(CASES))
  parser.add_argument('--json', help='also write the results to this JSON file')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--npz', help=argparse.SUPPRESS)
  parser.add_argument('--root', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    run_child(args.child, args.npz, args.root)
    return
  needed = [FIXTURES / 'make_checkpoint.py', FIXTURES / 'stm_random', REAL / 'JPEGImages' / 'bike',
            REAL / 'JPEGImages' / 'judo']
  missing = [str(p) for p in needed if not p.exists()]
  if missing:
    sys.exit('bench_stm: needs ../shared beside the repo; not found: ' + ', '.join(missing))
  started = time.perf_counter()
  work = pathlib.Path(tempfile.mkdtemp(prefix='bench_stm_'))
  results = []
  try:
    npz, root = prepare(work)
    for case in args.case or list(CASES):
      cmd = [sys.executable, __file__, '--child', case, '--npz', str(npz), '--root', str(root)]
      proc = subprocess.run(cmd, capture_output=True, text=True)
      line = next((l for l in proc.stdout.splitlines() if l.startswith('RESULT ')), None)
      if proc.returncode or line is None:
        print(f'{case}: FAILED (exit {proc.returncode})\n{proc.stderr[-4000:]}', flush=True)
        results.append(dict(case=case, error=f'exit {proc.returncode}'))
        continue
      results.append(json.loads(line[len('RESULT '):]))
      print(f"{case}: {results[-1]['fps']:.3f} frames/s", flush=True)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  print(f'\nSTM, random fixture weights, {datetime.date.today()}, {platform.machine()} '
        f'{os.cpu_count()} CPUs; total {time.perf_counter() - started:.0f} s\n')
  print(table(results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(results=results, official=OFFICIAL), f, indent=2)
  if any('error' in r for r in results):
    sys.exit(1)


if __name__ == '__main__':
  main()
