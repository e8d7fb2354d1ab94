"""Speed and peak-memory benchmark of STCN inference (``memvos_jax.inference.clip``).

Usage::

  python benchmarks/bench_stcn.py                        # all cases
  python benchmarks/bench_stcn.py --case bike480 --case long270
  python benchmarks/bench_stcn.py --json results.json    # also write JSON

Every case runs in its own subprocess, so the peak RSS reported is that
case's alone (``VmHWM`` read by the child at its end: it includes the
weights, the compiled program, the memory bank and the frame prefetch). Each
child prints one line of results; the parent prints a markdown table at the end.

Weights are the random ``stcn_random`` fixture from ``../shared/fixtures``,
rebuilt as .npz without torch (speed does not depend on the weights). The
clips are written as folders (generic layout) into a temporary directory and
read back with ``video_folder.find_clips``, like ``eval.py`` does. The shared
parts (runner, RSS, clip folders, tables) are in ``_common.py``.

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
import pathlib
import time

import _common as common
from _common import FIXTURES, REAL, fmt

PROG = 'bench_stcn'

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


def prepare_clips(work, rss_size):
  """Writes the synthetic clips under work/clips; returns that root."""
  root = work / 'clips'
  bedroom = common.real_frames('bedroom')
  if len(bedroom) < 200:
    common.die(PROG, f'expected 200 bedroom frames in {REAL}, found {len(bedroom)}')
  bedroom = bedroom[:200]
  frames = common.resized_frames(work, bedroom, 270, 480, 'bedroom')
  common.write_clip(root, 'long270', frames, common.synthetic_mask(270, 480))
  rh, rw = rss_size
  small = common.resized_frames(work, bedroom, rh, rw, 'bedroom')
  mask = common.synthetic_mask(rh, rw)
  common.write_clip(root, 'rss50', small[:50], mask)
  common.write_clip(root, 'rss400', small + small[::-1], mask)
  return root


def run_child(case, npz, clips_root):
  """Runs one case in this process and prints ``RESULT <json>``."""
  _, model, variables, load_s = common.load_model('stcn', npz)
  c = CASES[case]
  seg = common.make_segmenter(model, variables, mem_every=c['mem_every'], top_k=TOP_K,
                              memory_capacity=c['memory_capacity'], chunk=c['chunk'])
  clip, ann = common.open_clip(REAL if c['real'] else pathlib.Path(clips_root), c['clip'])
  t = common.time_clip(seg, clip, c['repeat'])
  result = t['result']
  common.emit_result(dict(
      case=case, clip=c['clip'], frames=result.frames, height=ann.size[0],
      width=ann.size[1], objects=len(ann.labels), mem_every=c['mem_every'],
      top_k=TOP_K, memory_capacity=c['memory_capacity'], chunk=c['chunk'],
      load_seconds=load_s, compile_seconds=result.compile_seconds,
      first_run_seconds=t['first_run_seconds'], steady_frames=t['steady_frames'],
      steady_seconds=t['steady_seconds'], fps=t['fps'], timing=t['timing'],
      trace_count=seg.trace_count, peak_rss_gb=common.peak_rss_gb(), **common.jax_info()))


# -------------------------------------------------------------------- parent


def describe(r):
  clip = f"{r['clip']} ({r['frames']}, {r['height']}x{r['width']}, {r['objects']} obj)"
  cap = r['memory_capacity'] or 'auto (unbounded)'
  settings = (f"mem_every {r['mem_every']}, top_k {r['top_k']}, "
              f"capacity {cap}, chunk {r['chunk']}")
  return clip, settings


HEADER = ['case', 'clip (frames, HxW, objects)', 'settings', 'compile s', 'steady frames/s',
          'peak RSS GB', 'official frames/s', 'ours/official', 'official RSS GB']


def row(r):
  clip, settings = describe(r)
  off = OFFICIAL.get(r['case'], {})
  return [r['case'], clip, settings, fmt(r['compile_seconds'], 1), fmt(r['fps'], 3),
          fmt(r['peak_rss_gb']), fmt(off.get('fps'), 3),
          common.ratio(r['fps'], off.get('fps')), fmt(off.get('rss_gb'))]


def table(results):
  lines = [common.results_table(HEADER, results, row)]
  by = {r['case']: r for r in results if 'error' not in r}
  if 'rss50' in by and 'rss400' in by:
    ratio = by['rss400']['peak_rss_gb'] / by['rss50']['peak_rss_gb']
    verdict = 'within 10%' if abs(ratio - 1) <= 0.10 else 'NOT within 10%'
    lines.append('')
    lines.append(f'rss400 / rss50 peak RSS: {ratio:.3f} ({verdict})')
  return '\n'.join(lines)


def report(r):
  clip, settings = describe(r)
  print(f"{r['case']}: {clip}; {settings}; compile {r['compile_seconds']:.1f} s; "
        f"{r['fps']:.3f} frames/s ({r['timing']}); peak RSS {r['peak_rss_gb']:.2f} GB; "
        f"case wall {r['case_seconds']:.0f} s", flush=True)


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
  args = common.parse_or_run_child(parser, run_child)

  common.check_shared(PROG, [FIXTURES / 'make_checkpoint.py', FIXTURES / 'stcn_random',
                             REAL / 'JPEGImages' / 'bike', REAL / 'Annotations' / 'bike',
                             REAL / 'JPEGImages' / 'bedroom'])
  try:
    rss_size = tuple(int(v) for v in args.rss_size.lower().split('x'))
    assert len(rss_size) == 2
  except (ValueError, AssertionError):
    common.die(PROG, f'--rss-size must be HxW, got {args.rss_size!r}')
  started = time.perf_counter()
  with common.work_dir(args.workdir, 'bench_stcn_') as work:
    npz = common.fixture_npz(work, 'stcn_random', 'stcn.npz')
    clips_root = prepare_clips(work, rss_size)
    print(f'# prepared weights and clips in {time.perf_counter() - started:.1f} s ({work})',
          flush=True)
    results = common.run_cases(__file__, args.case or list(CASES),
                               ['--npz', npz, '--clips-root', clips_root], report,
                               timeout=args.timeout)

  common.finish('STCN', started, table(results), results, args.json,
                rss_size=list(rss_size), official=OFFICIAL)

if __name__ == '__main__':
  main()
