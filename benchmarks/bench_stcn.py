"""Speed and peak-memory benchmark of STCN inference (``memvos_jax.pipeline``).

Usage::

  python benchmarks/bench_stcn.py                        # all cases
  python benchmarks/bench_stcn.py --case bike480 --case long270
  python benchmarks/bench_stcn.py --json results.json    # also write JSON

Every case runs in its own subprocess, so the peak RSS reported is that
case's alone (``ru_maxrss`` read by the child at its end: it includes the
weights, the compiled program, the memory bank and the frame prefetch). Each
child prints one line of results; the parent prints a markdown table at the end.

Weights are the random ``stcn_random`` fixture from ``../shared/fixtures``,
rebuilt as .npz without torch (speed does not depend on the weights). The
clips are written as folders (generic layout) into a temporary directory and
read back with ``video_folder.find_clips``, like ``eval.py`` does.

Cases:
  bike480  the real 4-frame 480x854 clip ``bike`` (2 objects), mem_every 5,
           chunk 4. The clip is one chunk, so it runs twice with the same
           ClipSegmenter: "compile s" is the first run's first chunk, the
           frames/s is frames / wall time of the whole second run (no compile).
  long270  200 ``bedroom`` frames resized to 270x480, synthetic 2-object
           first-frame mask, mem_every 5, memory_capacity 0 (= the official
           unbounded memory), chunk 8. frames/s = steady frames (all but the
           first chunk) / their wall time.
  rss50    the same frames, 50 long, memory_capacity 8, mem_every 5, chunk 8.
  rss400   400 frames (the 200 frames then reversed, ping-pong), as rss50.
           Peak RSS of rss400 should be within 10% of rss50's (bounded memory).

Official figures (frames/s and peak RSS) are those of ``../shared/BASELINE.md``:
the official PyTorch code on the same kind of 2-core CPU.
"""

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
REAL = SHARED / 'data' / 'real_clips'
FIXTURES = SHARED / 'fixtures'

# Official figures from ../shared/BASELINE.md (STCN rows): frames/s, peak RSS GB.
OFFICIAL = {
  'bike480': dict(fps=0.15, rss_gb=1.65),
  'long270': dict(fps=0.185, rss_gb=2.6),
}

CASES = {
  'bike480': dict(clip='bike', real=True, mem_every=5, memory_capacity=0,
                  chunk=4, repeat=True),
  'long270': dict(clip='long270', real=False, mem_every=5, memory_capacity=0,
                  chunk=8, repeat=False),
  'rss50': dict(clip='rss50', real=False, mem_every=5, memory_capacity=8,
                chunk=8, repeat=False),
  'rss400': dict(clip='rss400', real=False, mem_every=5, memory_capacity=8,
                 chunk=8, repeat=False),
}

TOP_K = 20


def die(message):
  print(f'bench_stcn: {message}', file=sys.stderr)
  sys.exit(2)


def check_shared():
  needed = [FIXTURES / 'make_checkpoint.py', FIXTURES / 'stcn_random',
            REAL / 'JPEGImages' / 'bike', REAL / 'Annotations' / 'bike',
            REAL / 'JPEGImages' / 'bedroom']
  missing = [str(p) for p in needed if not p.exists()]
  if missing:
    die('the shared fixtures and data beside the repo are missing '
        f'(expected {SHARED}); not found:\n  ' + '\n  '.join(missing))


def peak_rss_gb():
  """Peak resident set size of this process in GB (VmHWM, else ru_maxrss)."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024 / 1e9
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


# ------------------------------------------------------------------ fixtures


def write_weights(work):
  sys.path.insert(0, str(FIXTURES))
  import make_checkpoint  # noqa: E402  (from ../shared/fixtures)
  out = work / 'stcn.npz'
  if not out.exists():
    np.savez(out, **make_checkpoint.build_state('stcn_random'))
  return out


def synthetic_mask(h, w):
  """[H, W] uint8 with two objects: an ellipse (1) and a rectangle (2)."""
  yy, xx = np.mgrid[0:h, 0:w]
  mask = np.zeros((h, w), np.uint8)
  cy, cx, ry, rx = 0.55 * h, 0.3 * w, 0.25 * h, 0.15 * w
  mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = 1
  mask[int(0.2 * h):int(0.7 * h), int(0.6 * w):int(0.85 * w)] = 2
  return mask


def write_palette_png(path, mask):
  palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (768 - 9)
  im = Image.fromarray(mask, mode='L')
  im.putpalette(palette)  # -> mode 'P'
  im.save(path)


def write_clip(root, name, frames, mask):
  """Generic layout: ROOT/JPEGImages/<name>/NNNNN.jpg + Annotations/<name>/00000.png."""
  img_dir = root / 'JPEGImages' / name
  ann_dir = root / 'Annotations' / name
  if img_dir.exists():
    shutil.rmtree(img_dir)
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True, exist_ok=True)
  for i, src in enumerate(frames):
    shutil.copyfile(src, img_dir / f'{i:05d}.jpg')
  write_palette_png(ann_dir / '00000.png', mask)


def prepare_clips(work, rss_size):
  """Writes the synthetic clips under work/clips; returns that root."""
  root = work / 'clips'
  bedroom = sorted((REAL / 'JPEGImages' / 'bedroom').glob('*.jpg'))
  if len(bedroom) < 200:
    die(f'expected 200 bedroom frames in {REAL}, found {len(bedroom)}')
  bedroom = bedroom[:200]

  def resized(h, w):
    cache = work / f'bedroom_{h}x{w}'
    if not cache.exists():
      tmp = work / f'.bedroom_{h}x{w}.tmp'
      shutil.rmtree(tmp, ignore_errors=True)
      tmp.mkdir(parents=True)
      for i, src in enumerate(bedroom):
        with Image.open(src) as im:
          im.convert('RGB').resize((w, h), Image.BILINEAR).save(
              tmp / f'{i:05d}.jpg', quality=95)
      tmp.rename(cache)
    return sorted(cache.glob('*.jpg'))

  frames = resized(270, 480)
  write_clip(root, 'long270', frames, synthetic_mask(270, 480))
  rh, rw = rss_size
  small = resized(rh, rw)
  mask = synthetic_mask(rh, rw)
  write_clip(root, 'rss50', small[:50], mask)
  write_clip(root, 'rss400', small + small[::-1], mask)
  return root


# --------------------------------------------------------------------- child


def run_child(case, npz, clips_root):
  """Runs one case in this process and prints ``RESULT <json>``."""
  sys.path.insert(0, str(REPO))
  import jax  # noqa: E402
  from memvos_jax import pipeline  # noqa: E402
  from memvos_jax.data import video_folder  # noqa: E402

  spec = importlib.util.spec_from_file_location('stcn_config', REPO / 'configs' / 'stcn.py')
  config_module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(config_module)
  config = config_module.get_config()
  config.checkpoint = str(npz)

  c = CASES[case]
  t0 = time.perf_counter()
  model = pipeline.build_model(config)
  variables = pipeline.load_variables(config, model)
  load_s = time.perf_counter() - t0
  seg = pipeline.ClipSegmenter(model, variables, mem_every=c['mem_every'], top_k=TOP_K,
                               memory_capacity=c['memory_capacity'], chunk=c['chunk'])
  root = REAL if c['real'] else pathlib.Path(clips_root)
  clip = video_folder.find_clips(root, [c['clip']])[0]
  ann = video_folder.read_annotations(clip)

  tic = time.perf_counter()
  result = seg.segment(clip, out_dir=None)
  first_wall = time.perf_counter() - tic
  compile_s = result.compile_seconds
  if c['repeat']:
    tic = time.perf_counter()
    again = seg.segment(clip, out_dir=None)
    wall = time.perf_counter() - tic
    steady_frames, steady_s = again.frames, wall
    timing = 'second run, whole clip'
  else:
    steady_frames, steady_s = result.steady_frames, result.seconds
    timing = 'steady chunks'

  out = dict(
      case=case, clip=c['clip'], frames=result.frames, height=ann.size[0],
      width=ann.size[1], objects=len(ann.labels), mem_every=c['mem_every'],
      top_k=TOP_K, memory_capacity=c['memory_capacity'], chunk=c['chunk'],
      load_seconds=load_s, compile_seconds=compile_s, first_run_seconds=first_wall,
      steady_frames=steady_frames, steady_seconds=steady_s,
      fps=steady_frames / steady_s if steady_s > 0 else None, timing=timing,
      trace_count=seg.trace_count, peak_rss_gb=peak_rss_gb(),
      jax=jax.__version__, backend=jax.default_backend())
  print('RESULT ' + json.dumps(out), flush=True)


# -------------------------------------------------------------------- parent


def fmt(x, nd=2):
  return '—' if x is None else f'{x:.{nd}f}'


def describe(r):
  clip = f"{r['clip']} ({r['frames']}, {r['height']}x{r['width']}, {r['objects']} obj)"
  cap = r['memory_capacity'] or 'auto (unbounded)'
  settings = (f"mem_every {r['mem_every']}, top_k {r['top_k']}, "
              f"capacity {cap}, chunk {r['chunk']}")
  return clip, settings


def table(results):
  lines = [
      '| case | clip (frames, HxW, objects) | settings | compile s | steady frames/s '
      '| peak RSS GB | official frames/s | ours/official | official RSS GB |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  for r in results:
    if 'error' in r:
      lines.append(f"| {r['case']} | FAILED: {r['error']} | | | | | | | |")
      continue
    clip, settings = describe(r)
    off = OFFICIAL.get(r['case'], {})
    ratio = (f"{r['fps'] / off['fps']:.1f}x" if off.get('fps') and r['fps'] else '—')
    lines.append(
        f"| {r['case']} | {clip} | {settings} | {fmt(r['compile_seconds'], 1)} "
        f"| {fmt(r['fps'], 3)} | {fmt(r['peak_rss_gb'])} | {fmt(off.get('fps'), 3)} "
        f"| {ratio} | {fmt(off.get('rss_gb'))} |")
  by = {r['case']: r for r in results if 'error' not in r}
  if 'rss50' in by and 'rss400' in by:
    ratio = by['rss400']['peak_rss_gb'] / by['rss50']['peak_rss_gb']
    verdict = 'within 10%' if abs(ratio - 1) <= 0.10 else 'NOT within 10%'
    lines.append('')
    lines.append(f'rss400 / rss50 peak RSS: {ratio:.3f} ({verdict})')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', action='append', choices=sorted(CASES),
                      help='case to run (repeatable); default: all')
  parser.add_argument('--json', help='also write the results to this JSON file')
  parser.add_argument('--rss-size', default='270x480',
                      help='HxW of the rss50/rss400 frames (e.g. 135x240 if too slow)')
  parser.add_argument('--workdir', help='keep clips and weights here (default: a temp dir)')
  parser.add_argument('--timeout', type=float, default=None,
                      help='seconds allowed per case subprocess')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--npz', help=argparse.SUPPRESS)
  parser.add_argument('--clips-root', help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.child:
    run_child(args.child, args.npz, args.clips_root)
    return

  check_shared()
  try:
    rss_size = tuple(int(v) for v in args.rss_size.lower().split('x'))
    assert len(rss_size) == 2
  except (ValueError, AssertionError):
    die(f'--rss-size must be HxW, got {args.rss_size!r}')
  cases = args.case or list(CASES)
  started = time.perf_counter()
  temp = None
  if args.workdir:
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
  else:
    temp = tempfile.mkdtemp(prefix='bench_stcn_')
    work = pathlib.Path(temp)
  results = []
  try:
    npz = write_weights(work)
    clips_root = prepare_clips(work, rss_size)
    print(f'# prepared weights and clips in {time.perf_counter() - started:.1f} s ({work})',
          flush=True)
    for case in cases:
      cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), '--child', case,
             '--npz', str(npz), '--clips-root', str(clips_root)]
      tic = time.perf_counter()
      try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
      except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = 'timeout', e.stdout or '', e.stderr or ''
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
      wall = time.perf_counter() - tic
      line = next((l for l in stdout.splitlines() if l.startswith('RESULT ')), None)
      if rc != 0 or line is None:
        print(f'{case}: FAILED (exit {rc}) after {wall:.1f} s; child stderr:', flush=True)
        print(stderr[-8000:], flush=True)
        results.append(dict(case=case, error=f'exit {rc}', stderr=stderr[-8000:],
                            case_seconds=wall))
        continue
      r = json.loads(line[len('RESULT '):])
      r['case_seconds'] = wall
      results.append(r)
      clip, settings = describe(r)
      print(f"{case}: {clip}; {settings}; compile {r['compile_seconds']:.1f} s; "
            f"{r['fps']:.3f} frames/s ({r['timing']}); peak RSS {r['peak_rss_gb']:.2f} GB; "
            f"case wall {wall:.0f} s", flush=True)
  finally:
    if temp:
      shutil.rmtree(temp, ignore_errors=True)

  total = time.perf_counter() - started
  print()
  print(f'STCN, random fixture weights, {datetime.date.today()}, '
        f'{platform.machine()} {os.cpu_count()} CPUs; total {total:.0f} s')
  print()
  print(table(results))
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(date=str(datetime.date.today()), cpus=os.cpu_count(),
                     rss_size=list(rss_size), total_seconds=total, results=results,
                     official=OFFICIAL), f, indent=2)
  if any('error' in r for r in results):
    sys.exit(1)


if __name__ == '__main__':
  main()
