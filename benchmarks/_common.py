"""Shared parts of the benchmark scripts (``bench_stcn.py``, ``bench_stm.py``, ``bench_afb_urr.py``, ``bench_sam2.py``).

Paths to ``../shared``, peak RSS, fixture weights, clip folders in the generic
layout, model/config loading and clip timing for a case child, the
subprocess-per-case runner of the parent, and markdown table formatting.

A benchmark script runs every case in its own subprocess (``script --child
CASE ...``) so that the peak RSS of each case is that case's alone. The child
ends with one line ``RESULT <json>`` (``emit_result``); the parent collects
these with ``run_cases``. Nothing here imports jax at module level, so the
parent stays light; the child-side helpers import it when called.
"""

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from memvos_jax.apps import machine

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
REAL = SHARED / 'data' / 'real_clips'
FIXTURES = SHARED / 'fixtures'


# ----------------------------------------------------------------- errors


def die(prog, message):
  """Prints ``prog: message`` to stderr and exits with status 2."""
  print(f'{prog}: {message}', file=sys.stderr)
  sys.exit(2)


def check_shared(prog, needed):
  """Exits (``die``) naming every path of ``needed`` that does not exist."""
  missing = [str(p) for p in needed if not pathlib.Path(p).exists()]
  if missing:
    die(prog, 'the shared fixtures and data beside the repo are missing '
        f'(expected {SHARED}); not found:\n  ' + '\n  '.join(missing))


# ------------------------------------------------------------- peak memory


def peak_rss_bytes():
  """Peak resident set size of this process in bytes (VmHWM, else ru_maxrss)."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_gb():
  """Peak resident set size of this process in GB (1e9 bytes)."""
  return peak_rss_bytes() / 1e9


# ---------------------------------------------------------------- fixtures


def fixture_state(name):
  """The flat state dict of the random fixture ``name`` (``../shared/fixtures``)."""
  if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
  import make_checkpoint  # noqa: E402  (from ../shared/fixtures)
  return make_checkpoint.build_state(name)


def fixture_npz(work, name, filename):
  """Writes fixture ``name`` as ``work/filename`` (.npz, no torch) unless present."""
  out = pathlib.Path(work) / filename
  if not out.exists():
    np.savez(out, **fixture_state(name))
  return out


@contextlib.contextmanager
def work_dir(path, prefix):
  """Yields ``path`` (created, kept) or, if None, a temp dir deleted at the end."""
  if path:
    work = pathlib.Path(path)
    work.mkdir(parents=True, exist_ok=True)
    yield work
    return
  temp = tempfile.mkdtemp(prefix=prefix)
  try:
    yield pathlib.Path(temp)
  finally:
    shutil.rmtree(temp, ignore_errors=True)


# ------------------------------------------------------------------- clips


def real_frames(name):
  """Sorted JPEG paths of the real clip ``name`` under ``../shared/data/real_clips``."""
  return sorted((REAL / 'JPEGImages' / name).glob('*.jpg'))


def synthetic_mask(h, w):
  """[H, W] uint8 with two objects: an ellipse (1) and a rectangle (2)."""
  yy, xx = np.mgrid[0:h, 0:w]
  mask = np.zeros((h, w), np.uint8)
  cy, cx, ry, rx = 0.55 * h, 0.3 * w, 0.25 * h, 0.15 * w
  mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = 1
  mask[int(0.2 * h):int(0.7 * h), int(0.6 * w):int(0.85 * w)] = 2
  return mask


def moving_square_frame(t, h, w, background):
  """Frame ``t`` of a synthetic video: a red square sliding over ``background`` [H, W, 3]
  (it moves with t) and a green rectangle that stays; ``moving_square_mask`` is frame 0's."""
  f = background.copy()
  x = int((w - 24) * (0.5 + 0.5 * np.sin(t / 15)))
  f[h // 4:h // 4 + 24, x:x + 24] = (220, 40, 40)
  f[h // 2:h // 2 + 20, w // 3:w // 3 + 30] = (40, 200, 40)
  return f


def moving_square_mask(h, w):
  """[H, W] uint8 ids of ``moving_square_frame(0, ...)``: the square 1, the rectangle 2."""
  m = np.zeros((h, w), np.uint8)
  x = int((w - 24) * 0.5)
  m[h // 4:h // 4 + 24, x:x + 24] = 1
  m[h // 2:h // 2 + 20, w // 3:w // 3 + 30] = 2
  return m


def write_palette_png(path, mask):
  """Writes [H, W] uint8 labels as an indexed palette PNG (DAVIS style)."""
  from PIL import Image
  palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (768 - 9)
  im = Image.fromarray(mask, mode='L')
  im.putpalette(palette)  # -> mode 'P'
  im.save(path)


def write_clip(root, name, frames, first_mask):
  """Generic layout: ROOT/JPEGImages/<name>/NNNNN.jpg + Annotations/<name>/00000.png.

  ``frames`` are JPEG paths, copied in order; ``first_mask`` is either an
  [H, W] uint8 array (written as a palette PNG) or the path of a PNG to copy.
  """
  img_dir = pathlib.Path(root) / 'JPEGImages' / name
  ann_dir = pathlib.Path(root) / 'Annotations' / name
  if img_dir.exists():
    shutil.rmtree(img_dir)
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True, exist_ok=True)
  for i, src in enumerate(frames):
    shutil.copyfile(src, img_dir / f'{i:05d}.jpg')
  if isinstance(first_mask, np.ndarray):
    write_palette_png(ann_dir / '00000.png', first_mask)
  else:
    shutil.copyfile(first_mask, ann_dir / '00000.png')


def resized_frames(work, frames, h, w, tag):
  """``frames`` resized to HxW (PIL bilinear, JPEG q95), cached in ``work/<tag>_HxW``."""
  from PIL import Image
  cache = pathlib.Path(work) / f'{tag}_{h}x{w}'
  if not cache.exists():
    tmp = pathlib.Path(work) / f'.{tag}_{h}x{w}.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, src in enumerate(frames):
      with Image.open(src) as im:
        im.convert('RGB').resize((w, h), Image.BILINEAR).save(tmp / f'{i:05d}.jpg', quality=95)
    tmp.rename(cache)
  return sorted(cache.glob('*.jpg'))


# ------------------------------------------------------------------- child


def load_config(name):
  """``memvos_jax.registry.config(name)``: the config's default variant."""
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  from memvos_jax import registry  # noqa: E402
  return registry.config(name)


def load_model(config_name, npz):
  """(config, model, variables, load seconds) through ``build_model/load_variables``."""
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  from memvos_jax.registry import build_model, load_variables  # noqa: E402
  config = load_config(config_name)
  config.checkpoint = str(npz)
  t0 = time.perf_counter()
  model = build_model(config)
  variables = load_variables(config, model)
  return config, model, variables, time.perf_counter() - t0


def make_segmenter(model, variables, **options):
  """``ClipSegmenter(family, model, variables, **options)`` (after ``load_model``)."""
  from memvos_jax import registry  # noqa: E402
  from memvos_jax.inference.clip import ClipSegmenter  # noqa: E402
  return ClipSegmenter(registry.of(model), model, variables, **options)


def open_clip(root, name):
  """(clip, first annotations) of clip ``name`` under ``root`` (``video_folder``)."""
  from memvos_jax.data import video_folder  # noqa: E402
  clip = video_folder.find_clips(root, [name])[0]
  return clip, video_folder.read_annotations(clip)


def time_clip(seg, clip, repeat):
  """Segments ``clip`` with ``seg`` (no output) and times it.

  ``repeat``: the clip is one chunk, so it is run a second time with the same
  segmenter and the steady figures are that whole second run (no compile);
  else they are the first run's steady chunks (all but the first chunk).
  Returns a dict: result (the first ``ClipResult``), first_run_seconds,
  steady_frames, steady_seconds, fps, timing, cpu_seconds (CPU time of all
  threads during the second run; None without ``repeat``).
  """
  tic = time.perf_counter()
  result = seg.segment(clip, out_dir=None)
  first_wall = time.perf_counter() - tic
  cpu_s = None
  if repeat:
    tic, cpu0 = time.perf_counter(), time.process_time()
    again = seg.segment(clip, out_dir=None)
    steady_frames, steady_s = again.frames, time.perf_counter() - tic
    cpu_s = time.process_time() - cpu0
    timing = 'second run, whole clip'
  else:
    steady_frames, steady_s, timing = result.steady_frames, result.seconds, 'steady chunks'
  return dict(result=result, first_run_seconds=first_wall, steady_frames=steady_frames,
              steady_seconds=steady_s, fps=steady_frames / steady_s if steady_s > 0 else None,
              timing=timing, cpu_seconds=cpu_s)


def jax_info():
  """``dict(jax=version, backend=default backend)`` for a result line."""
  import jax  # noqa: E402
  return dict(jax=jax.__version__, backend=jax.default_backend())


def emit_result(out):
  """Prints the child's one result line, ``RESULT <json>``."""
  print('RESULT ' + json.dumps(out), flush=True)


# ------------------------------------------------------------------ parent


def add_child_options(parser):
  """Adds the hidden options by which the parent starts a case child.

  ``--child CASE --npz WEIGHTS --clips-root DIR``; see ``run_cases``.
  """
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--npz', help=argparse.SUPPRESS)
  parser.add_argument('--clips-root', help=argparse.SUPPRESS)


def parse_or_run_child(parser, run_child):
  """Parses the command line (``add_child_options`` included) and returns it.

  Started as a case child (``--child``), it runs ``run_child(case, npz,
  clips_root)`` instead and exits.
  """
  add_child_options(parser)
  args = parser.parse_args()
  if args.child:
    run_child(args.child, args.npz, args.clips_root)
    sys.exit(0)
  return args


def run_case(script, case, args, timeout=None):
  """Runs ``script --child case *args`` in a subprocess.

  Returns (result dict or None, exit status or 'timeout', child stderr, wall s).
  """
  cmd = [sys.executable, str(pathlib.Path(script).resolve()), '--child', case, *map(str, args)]
  tic = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
  except subprocess.TimeoutExpired as e:
    rc, stdout, stderr = 'timeout', e.stdout or '', e.stderr or ''
    stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
  wall = time.perf_counter() - tic
  line = next((l for l in stdout.splitlines() if l.startswith('RESULT ')), None)
  if rc != 0 or line is None:
    return None, rc, stderr, wall
  return json.loads(line[len('RESULT '):]), rc, stderr, wall


def run_cases(script, cases, args, report, timeout=None):
  """Runs each case in its own subprocess (``run_case``); returns the result dicts.

  A successful result gets ``case_seconds`` (the child's wall time) and is
  passed to ``report(result)`` (the script's progress line); a failure prints
  the child's stderr and becomes ``dict(case, error, stderr, case_seconds)``.
  """
  results = []
  for case in cases:
    r, rc, stderr, wall = run_case(script, case, args, timeout)
    if r is None:
      print(f'{case}: FAILED (exit {rc}) after {wall:.1f} s; child stderr:', flush=True)
      print(stderr[-8000:], flush=True)
      results.append(dict(case=case, error=f'exit {rc}', stderr=stderr[-8000:],
                          case_seconds=wall))
      continue
    r['case_seconds'] = wall
    results.append(r)
    report(r)
  return results


def finish(model_name, started, table, results, json_path=None, **extra):
  """Prints the summary line and ``table``, writes the JSON, exits 1 if a case failed.

  ``started``: ``time.perf_counter()`` at the start; the JSON holds
  ``total_seconds``, ``results`` and ``extra`` (plus date and CPU count).
  """
  total = time.perf_counter() - started
  print()
  print(summary_line(model_name, total))
  print()
  print(table)
  if json_path:
    write_json(json_path, dict(total_seconds=total, results=results, **extra))
  if any('error' in r for r in results):
    sys.exit(1)


def summary_line(model_name, total_seconds):
  """The line printed above the table: model, date, machine, total time."""
  return (f'{model_name}, random fixture weights, {datetime.date.today()}, '
          f'{machine.describe()}; total {total_seconds:.0f} s')


def write_json(path, payload):
  """Writes ``payload`` (plus the date and ``machine.info()``: CPU model, ISA flags,
  cores, load, when it is a dict) as JSON."""
  if isinstance(payload, dict):
    payload = {'date': str(datetime.date.today()), 'cpus': os.cpu_count(),
               'machine': machine.info(), **payload}
  with open(path, 'w') as f:
    json.dump(payload, f, indent=2)


# ------------------------------------------------------------------ tables


def fmt(x, nd=2):
  """``x`` with ``nd`` decimals, or an em dash for None."""
  return '—' if x is None else f'{x:.{nd}f}'


def ratio(ours, official):
  """``'1.8x'`` (ours / official), or an em dash when either is missing."""
  return f'{ours / official:.1f}x' if ours and official else '—'


def table_row(cells):
  """One markdown table row; empty cells stay as ``| |``."""
  return '|' + '|'.join(f' {c} ' if c != '' else ' ' for c in cells) + '|'


def markdown_table(header, rows):
  """Markdown table of ``header`` (cell names) and ``rows`` (lists of cells)."""
  return '\n'.join([table_row(header), table_row(['---'] * len(header))]
                   + [table_row(r) for r in rows])


def failed_row(r, width):
  """The table row of a failed case: its name, ``FAILED: <error>``, empty cells."""
  return [r['case'], f"FAILED: {r['error']}"] + [''] * (width - 2)


def results_table(header, results, row):
  """Markdown table with ``row(result)`` (a list of cells) per case, failures as ``failed_row``."""
  return markdown_table(header, [failed_row(r, len(header)) if 'error' in r else row(r)
                                 for r in results])
