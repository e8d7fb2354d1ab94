"""Speed and peak-memory benchmark of STM inference (``memvos_jax.inference.clip``).

Usage::

  python benchmarks/bench_stm.py                       # all cases
  python benchmarks/bench_stm.py --case bike480        # one case
  python benchmarks/bench_stm.py --json results.json   # also write JSON

Every case runs in its own subprocess (peak RSS = that case's ``VmHWM``).
Weights are the random ``stm_random`` fixture rebuilt as .npz without torch,
loaded through ``configs/stm.py`` (``build_model``/``load_variables``).

Cases (the official figures' settings, ``../shared/BASELINE.md`` STM rows):
  bike480  the real 4-frame 480x854 clip ``bike`` (2 objects), mem_every 5,
           chunk 4. One chunk, so it runs twice with the same ClipSegmenter:
           frames/s = 4 / wall time of the second run (no compile).
  judo480  the real 16-frame 480x854 clip ``judo`` with its first-frame
           annotation only (1 object, as the official eval_DAVIS.py reads
           it), mem_every 5, chunk 4; frames/s = steady frames (all but the
           first chunk) / their wall time.
Our frames/s include JPEG decoding (a background prefetch thread); the
official figures exclude it. Shared parts (runner, RSS, clip folders, tables)
are in ``_common.py``.
"""

import argparse
import time

import _common as common
from _common import FIXTURES, REAL

PROG = 'bench_stm'

# ../shared/BASELINE.md, STM rows: official frames/s and peak RSS (GB).
OFFICIAL = {'bike480': dict(fps=0.072, rss_gb=1.86), 'judo480': dict(fps=0.088, rss_gb=2.1)}
CASES = {
    'bike480': dict(clip='bike', frames=4, chunk=4, repeat=True),
    'judo480': dict(clip='judo', frames=16, chunk=4, repeat=False),
}
MEM_EVERY = 5


def prepare(work):
  """Weights (.npz) and generic-layout clips (first-frame annotation only) in ``work``."""
  npz = common.fixture_npz(work, 'stm_random', 'stm.npz')
  for case in CASES.values():
    name = case['clip']
    common.write_clip(work / 'clips', name, common.real_frames(name)[:case['frames']],
                      REAL / 'Annotations' / name / '00000.png')
  return npz, work / 'clips'


def run_child(case, npz, root):
  """Runs one case in this process and prints ``RESULT <json>``."""
  _, model, variables, _ = common.load_model('stm', npz)
  c = CASES[case]
  seg = common.make_segmenter(model, variables, mem_every=MEM_EVERY, chunk=c['chunk'])
  clip, ann = common.open_clip(root, c['clip'])
  t = common.time_clip(seg, clip, c['repeat'])
  result = t['result']
  common.emit_result(dict(
      case=case, clip=c['clip'], frames=result.frames, size=list(ann.size),
      objects=len(ann.labels), mem_every=MEM_EVERY, chunk=c['chunk'],
      compile_seconds=result.compile_seconds, steady_frames=t['steady_frames'],
      steady_seconds=t['steady_seconds'], fps=t['fps'], trace_count=seg.trace_count,
      peak_rss_gb=common.peak_rss_gb(), **common.jax_info()))


HEADER = ['case', 'clip (frames, HxW, objects)', 'compile s', 'frames/s', 'peak RSS GB',
          'official frames/s', 'ours/official', 'official RSS GB']


def row(r):
  off = OFFICIAL[r['case']]
  h, w = r['size']
  return [r['case'], f"{r['clip']} ({r['frames']}, {h}x{w}, {r['objects']})",
          f"{r['compile_seconds']:.1f}", f"{r['fps']:.3f}", f"{r['peak_rss_gb']:.2f}",
          f"{off['fps']:.3f}", f"{r['fps'] / off['fps']:.1f}x", f"{off['rss_gb']:.2f}"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', action='append', choices=sorted(CASES))
  parser.add_argument('--json', help='also write the results to this JSON file')
  args = common.parse_or_run_child(parser, run_child)
  common.check_shared(PROG, [FIXTURES / 'make_checkpoint.py', FIXTURES / 'stm_random',
                             REAL / 'JPEGImages' / 'bike', REAL / 'JPEGImages' / 'judo'])
  started = time.perf_counter()
  with common.work_dir(None, 'bench_stm_') as work:
    npz, root = prepare(work)
    results = common.run_cases(
        __file__, args.case or list(CASES), ['--npz', npz, '--clips-root', root],
        lambda r: print(f"{r['case']}: {r['fps']:.3f} frames/s", flush=True))
  common.finish('STM', started, common.results_table(HEADER, results, row), results,
                args.json, official=OFFICIAL)

if __name__ == '__main__':
  main()
