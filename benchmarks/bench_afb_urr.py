"""Speed and peak-memory benchmark of AFB-URR inference (``memvos_jax.pipeline``).

Usage::

  python benchmarks/bench_afb_urr.py                      # all cases
  python benchmarks/bench_afb_urr.py --case bike480       # one case
  python benchmarks/bench_afb_urr.py --json results.json  # also write JSON

Every case runs in its own subprocess (peak RSS = that case's ``VmHWM``).
Weights are the random ``afb_urr_random`` fixture rebuilt as .npz without
torch (speed does not depend on the weights); clips are folders read with
``video_folder.find_clips`` and run with ``ClipSegmenter.segment`` as
``eval.py`` does. Helpers (masks, clip folders, RSS) come from bench_stcn.py.

Cases:
  bike480   the real 4-frame 480x854 clip ``bike`` (2 objects + background),
            official DAVIS settings (budget 300000, update rate 0.1), chunk 4.
            One chunk: run twice, frames/s = 4 / wall time of the second run.
  long270   the first 60 ``bedroom`` frames at 270x480, synthetic 2-object
            mask, budget 300000 (exact slots: 59 frames x 510 positions per
            class), chunk 8; frames/s over the steady chunks.
  budget270 120 such frames (60, then reversed) with a budget of 3 x 3000
            (~6 frames of positions per class): merging and LFU removal run
            on most frames; memory stays flat (compare the RSS with long270).

Official figure: AFB-URR row of ``../shared/BASELINE.md`` (bike, budget 300000).
"""

import argparse
import datetime
import importlib.util
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

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_stcn as common  # noqa: E402  (clip folders, masks, peak RSS)

REPO, SHARED, REAL, FIXTURES = common.REPO, common.SHARED, common.REAL, common.FIXTURES

OFFICIAL = {'bike480': dict(fps=0.14, rss_gb=None)}

CASES = {
    'bike480': dict(clip='bike', real=True, budget=300_000, chunk=4, repeat=True),
    'long270': dict(clip='long270', real=False, budget=300_000, chunk=8, repeat=False),
    'budget270': dict(clip='budget270', real=False, budget=9_000, chunk=8, repeat=False),
}


def die(message):
  print(f'bench_afb_urr: {message}', file=sys.stderr)
  sys.exit(2)


def prepare(work):
  sys.path.insert(0, str(FIXTURES))
  import make_checkpoint  # noqa: E402  (from ../shared/fixtures)
  npz = work / 'afb_urr.npz'
  if not npz.exists():
    np.savez(npz, **make_checkpoint.build_state('afb_urr_random'))
  root = work / 'clips'
  bedroom = sorted((REAL / 'JPEGImages' / 'bedroom').glob('*.jpg'))[:60]
  if len(bedroom) < 60:
    die(f'expected 60 bedroom frames in {REAL}')
  cache = work / 'bedroom_270x480'
  if not cache.exists():
    from PIL import Image
    cache.mkdir(parents=True)
    for i, src in enumerate(bedroom):
      with Image.open(src) as im:
        im.convert('RGB').resize((480, 270), Image.BILINEAR).save(cache / f'{i:05d}.jpg',
                                                                  quality=95)
  frames = sorted(cache.glob('*.jpg'))
  mask = common.synthetic_mask(270, 480)
  common.write_clip(root, 'long270', frames, mask)
  common.write_clip(root, 'budget270', frames + frames[::-1], mask)
  return npz, root


def run_child(case, npz, clips_root):
  sys.path.insert(0, str(REPO))
  import jax  # noqa: E402
  from memvos_jax import pipeline  # noqa: E402
  from memvos_jax.data import video_folder  # noqa: E402

  spec = importlib.util.spec_from_file_location('afb_config', REPO / 'configs' / 'afb_urr.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.checkpoint = str(npz)
  c = CASES[case]
  t0 = time.perf_counter()
  model = pipeline.build_model(config)
  variables = pipeline.load_variables(config, model)
  load_s = time.perf_counter() - t0
  options = config.inference.to_dict()
  options.update(budget=c['budget'], chunk=c['chunk'])
  seg = pipeline.ClipSegmenter(model, variables, **options)
  root = REAL if c['real'] else pathlib.Path(clips_root)
  clip = video_folder.find_clips(root, [c['clip']])[0]
  ann = video_folder.read_annotations(clip)

  tic = time.perf_counter()
  result = seg.segment(clip, out_dir=None)
  first_wall = time.perf_counter() - tic
  cpu_s = None
  if c['repeat']:
    tic, cpu0 = time.perf_counter(), time.process_time()
    again = seg.segment(clip, out_dir=None)
    steady_frames, steady_s, timing = again.frames, time.perf_counter() - tic, 'second run'
    cpu_s = time.process_time() - cpu0
  else:
    steady_frames, steady_s, timing = result.steady_frames, result.seconds, 'steady chunks'
  from memvos_jax.inference_afb_urr import slots_for
  memory = seg.family.memory_frames(result.frames, {0}, options)
  slots = slots_for(c['budget'], len(ann.labels), ann.size, memory)
  out = dict(case=case, clip=c['clip'], frames=result.frames, height=ann.size[0],
             width=ann.size[1], objects=len(ann.labels), budget=c['budget'], chunk=c['chunk'],
             slots_per_class=slots, load_seconds=load_s,
             compile_seconds=result.compile_seconds, first_run_seconds=first_wall,
             steady_frames=steady_frames, steady_seconds=steady_s,
             fps=steady_frames / steady_s if steady_s > 0 else None, timing=timing,
             # CPU seconds of the timed run (all threads): on a shared machine
             # frames/s at 2 busy cores ~ frames / (cpu_seconds / 2).
             cpu_seconds=cpu_s,
             trace_count=seg.trace_count, peak_rss_gb=common.peak_rss_gb(),
             jax=jax.__version__, backend=jax.default_backend())
  print('RESULT ' + json.dumps(out), flush=True)


def fmt(x, nd=2):
  return '—' if x is None else f'{x:.{nd}f}'


def table(results):
  lines = ['| case | clip (frames, HxW, objects) | budget, slots/class | compile s '
           '| frames/s | peak RSS GB | official frames/s | ours/official |',
           '| --- | --- | --- | --- | --- | --- | --- | --- |']
  for r in results:
    if 'error' in r:
      lines.append(f"| {r['case']} | FAILED: {r['error']} | | | | | | |")
      continue
    off = OFFICIAL.get(r['case'], {})
    ratio = f"{r['fps'] / off['fps']:.1f}x" if off.get('fps') and r['fps'] else '—'
    lines.append(
        f"| {r['case']} | {r['clip']} ({r['frames']}, {r['height']}x{r['width']}, "
        f"{r['objects']} obj) | {r['budget']}, {r['slots_per_class']} "
        f"| {fmt(r['compile_seconds'], 1)} | {fmt(r['fps'], 3)} | {fmt(r['peak_rss_gb'])} "
        f"| {fmt(off.get('fps'), 3)} | {ratio} |")
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', action='append', choices=sorted(CASES))
  parser.add_argument('--json')
  parser.add_argument('--workdir', help='keep weights and clips here (default: a temp dir)')
  parser.add_argument('--timeout', type=float, default=None)
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--npz', help=argparse.SUPPRESS)
  parser.add_argument('--clips-root', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    run_child(args.child, args.npz, args.clips_root)
    return
  needed = [FIXTURES / 'make_checkpoint.py', FIXTURES / 'afb_urr_random',
            REAL / 'JPEGImages' / 'bike', REAL / 'JPEGImages' / 'bedroom']
  missing = [str(p) for p in needed if not p.exists()]
  if missing:
    die('the shared fixtures and data beside the repo are missing: ' + ', '.join(missing))
  started = time.perf_counter()
  temp = None
  if args.workdir:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
  else:
    temp = tempfile.mkdtemp(prefix='bench_afb_urr_')
    work = pathlib.Path(temp)
  results = []
  try:
    npz, clips_root = prepare(work)
    for case in args.case or list(CASES):
      cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), '--child', case,
             '--npz', str(npz), '--clips-root', str(clips_root)]
      try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
      except subprocess.TimeoutExpired:
        rc, stdout, stderr = 'timeout', '', ''
      line = next((l for l in stdout.splitlines() if l.startswith('RESULT ')), None)
      if rc != 0 or line is None:
        print(f'{case}: FAILED (exit {rc}); child stderr:\n{stderr[-4000:]}', flush=True)
        results.append(dict(case=case, error=f'exit {rc}'))
        continue
      r = json.loads(line[len('RESULT '):])
      results.append(r)
      cpu = (f", {r['cpu_seconds']:.1f} CPU s for {r['steady_frames']} frames"
             if r.get('cpu_seconds') else '')
      print(f"{case}: {fmt(r['fps'], 3)} frames/s ({r['timing']}{cpu}), compile "
            f"{r['compile_seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
  finally:
    if temp:
      shutil.rmtree(temp, ignore_errors=True)
  print()
  print(f'AFB-URR, random fixture weights, {datetime.date.today()}, {platform.machine()} '
        f'{os.cpu_count()} CPUs; total {time.perf_counter() - started:.0f} s')
  print()
  print(table(results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(date=str(datetime.date.today()), results=results, official=OFFICIAL), f,
                indent=2)
  if any('error' in r for r in results):
    sys.exit(1)


if __name__ == '__main__':
  main()
