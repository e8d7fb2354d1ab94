"""Speed and peak-memory benchmark of AFB-URR inference (``memvos_jax.inference.clip``).

Usage::

  python benchmarks/bench_afb_urr.py                      # all cases
  python benchmarks/bench_afb_urr.py --case bike480       # one case
  python benchmarks/bench_afb_urr.py --json results.json  # also write JSON

Every case runs in its own subprocess (peak RSS = that case's ``VmHWM``).
Weights are the random ``afb_urr_random`` fixture rebuilt as .npz without
torch (speed does not depend on the weights); clips are folders read with
``video_folder.find_clips`` and run with ``ClipSegmenter.segment`` as
``eval.py`` does. Shared parts (runner, RSS, clip folders, tables) are in
``_common.py``.

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
import pathlib
import time

import _common as common
from _common import FIXTURES, REAL, fmt

PROG = 'bench_afb_urr'

OFFICIAL = {'bike480': dict(fps=0.14, rss_gb=None)}

CASES = {
    'bike480': dict(clip='bike', real=True, budget=300_000, chunk=4, repeat=True),
    'long270': dict(clip='long270', real=False, budget=300_000, chunk=8, repeat=False),
    'budget270': dict(clip='budget270', real=False, budget=9_000, chunk=8, repeat=False),
}


def prepare(work):
  npz = common.fixture_npz(work, 'afb_urr_random', 'afb_urr.npz')
  root = work / 'clips'
  bedroom = common.real_frames('bedroom')[:60]
  if len(bedroom) < 60:
    common.die(PROG, f'expected 60 bedroom frames in {REAL}')
  frames = common.resized_frames(work, bedroom, 270, 480, 'bedroom60')
  mask = common.synthetic_mask(270, 480)
  common.write_clip(root, 'long270', frames, mask)
  common.write_clip(root, 'budget270', frames + frames[::-1], mask)
  return npz, root


def run_child(case, npz, clips_root):
  config, model, variables, load_s = common.load_model('afb_urr', npz)
  c = CASES[case]
  options = config.inference.to_dict()
  options.update(budget=c['budget'], chunk=c['chunk'])
  seg = common.make_segmenter(model, variables, **options)
  clip, ann = common.open_clip(REAL if c['real'] else pathlib.Path(clips_root), c['clip'])
  t = common.time_clip(seg, clip, c['repeat'])
  result = t['result']
  from memvos_jax.models.afb_urr.inference import slots_for
  memory = seg.family.memory_frames(result.frames, {0}, options)
  slots = slots_for(c['budget'], len(ann.labels), ann.size, memory)
  common.emit_result(dict(
      case=case, clip=c['clip'], frames=result.frames, height=ann.size[0],
      width=ann.size[1], objects=len(ann.labels), budget=c['budget'], chunk=c['chunk'],
      slots_per_class=slots, load_seconds=load_s, compile_seconds=result.compile_seconds,
      first_run_seconds=t['first_run_seconds'], steady_frames=t['steady_frames'],
      steady_seconds=t['steady_seconds'], fps=t['fps'],
      timing='second run' if c['repeat'] else t['timing'],
      # CPU seconds of the timed run (all threads): on a shared machine
      # frames/s at 2 busy cores ~ frames / (cpu_seconds / 2).
      cpu_seconds=t['cpu_seconds'],
      trace_count=seg.trace_count, peak_rss_gb=common.peak_rss_gb(), **common.jax_info()))


HEADER = ['case', 'clip (frames, HxW, objects)', 'budget, slots/class', 'compile s',
          'frames/s', 'peak RSS GB', 'official frames/s', 'ours/official']


def row(r):
  off = OFFICIAL.get(r['case'], {})
  return [r['case'],
          f"{r['clip']} ({r['frames']}, {r['height']}x{r['width']}, {r['objects']} obj)",
          f"{r['budget']}, {r['slots_per_class']}", fmt(r['compile_seconds'], 1),
          fmt(r['fps'], 3), fmt(r['peak_rss_gb']), fmt(off.get('fps'), 3),
          common.ratio(r['fps'], off.get('fps'))]


def report(r):
  cpu = (f", {r['cpu_seconds']:.1f} CPU s for {r['steady_frames']} frames"
         if r.get('cpu_seconds') else '')
  print(f"{r['case']}: {fmt(r['fps'], 3)} frames/s ({r['timing']}{cpu}), compile "
        f"{r['compile_seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--case', action='append', choices=sorted(CASES))
  parser.add_argument('--json')
  parser.add_argument('--workdir', help='keep weights and clips here (default: a temp dir)')
  parser.add_argument('--timeout', type=float, default=None)
  args = common.parse_or_run_child(parser, run_child)
  common.check_shared(PROG, [FIXTURES / 'make_checkpoint.py', FIXTURES / 'afb_urr_random',
                             REAL / 'JPEGImages' / 'bike', REAL / 'JPEGImages' / 'bedroom'])
  started = time.perf_counter()
  with common.work_dir(args.workdir, 'bench_afb_urr_') as work:
    npz, clips_root = prepare(work)
    results = common.run_cases(__file__, args.case or list(CASES),
                               ['--npz', npz, '--clips-root', clips_root], report,
                               timeout=args.timeout)
  common.finish('AFB-URR', started, common.results_table(HEADER, results, row), results,
                args.json, official=OFFICIAL)

if __name__ == '__main__':
  main()
