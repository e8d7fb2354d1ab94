"""Ours beside the official PyTorch code: same clip, weights and threads, alternating runs.

    .venv/bin/python benchmarks/vs_official.py --official-src ~/STCN --model stcn \\
        [--torch-python /tmp/torchenv/bin/python] [--clip long270] [--frames N] \\
        [--repeats 3] [--threads T] [--chunk C] [--json OUT] [--workdir DIR]

``--model stcn|stm|afb_urr|sam2`` with ``--official-src`` a checkout of the
official repository (hkchengrex/STCN, seoungwugoh/STM, xmlyqing00/AFB-URR,
facebookresearch/sam2); it is imported at run time, never copied. SAM 2
needs hydra-core and iopath in the torch Python.

Both sides run as children of this script, one process per run:

* official: ``official_runner.py`` in ``--torch-python`` (a Python with torch
  and torchvision): the unedited official model and evaluation loop on the
  CPU (STCN ``InferenceCore``, STM ``Run_video``, AFB-URR ``eval_DAVIS``, SAM 2
  ``tools/vos_inference.py``: ``add_new_mask`` on frame 0, ``propagate_in_video``).
* ours: this script (``--child-ours``) in our venv: ``build_model`` /
  ``load_variables`` on the same official ``.pth`` file (converted at load by
  ``memvos_jax.convert``), ``ClipSegmenter.run`` over the clip.

The runs alternate, official then ours, ``--repeats`` times (O, J, O, J, ...)
so that a change of the machine's load hits both sides alike.

Same inputs: the clip is written once as a folder (generic layout for ours,
and a DAVIS-2017 tree of symlinks to it for the official datasets), with the
first-frame annotation only. Weights: the random-init fixture of
``../shared/fixtures`` (``stcn_random``, ``stm_random``, ``afb_urr_random``,
``sam2_random``: SAM 2.1 Hiera-T)
written once as an official ``.pth`` with ``make_checkpoint.py`` (in the torch
Python) and loaded from that one file by both sides. Settings are the official
DAVIS ones on both sides: STCN mem_every 5, top_k 20, unbounded memory; STM
mem_every 5; AFB-URR budget ``--budget`` (300000), update rate 0.1, merge
threshold 0.95; SAM 2.1 Hiera-T at 1024x1024 with the options of
``build_sam2_video_predictor`` (our ``configs/sam2.py``); ours with
``memory_capacity`` 0 (as much as the official unbounded memory holds).

What is timed (the same on both sides): the inference loop only, over frames
s..T-1, where s is the length of our first chunk (``--chunk``; by default
min(8, T // 2), so a 4-frame clip gets s = 2). Model loading and JPEG decoding
are outside it on both sides: the official datasets decode the whole clip
before the loop, and ours decodes every frame (``FrameReader``) before calling
``ClipSegmenter.run`` on the decoded chunks. Ours: frames/s = (T - s) / the
wall time from the end of the first chunk to the end of the clip
(``ClipSegmenter.run``'s steady seconds); the first chunk (tracing, XLA
compilation, and running frames 0..s-1) is the **compile s** column. Official
(torch has no compilation): frames/s = (T - s) / the wall time from the moment
the official code begins frame s's own work, after frame s-1 is memorised
(STCN: its ``encode_key(s)`` call; AFB-URR: loop iteration s; STM: its
segmentation call for frame s, as its iteration s first memorises frame s-1;
SAM 2: ``propagate_in_video`` resumed after yielding frame s-1),
to the end of its loop (STCN's ends with the un-padding and resizing of the
probabilities). SAM 2's official ``init_state`` decodes and resizes every
frame to 1024x1024 before the loop, while ours resizes inside its step, so
that resize is timed on our side only. Both sides memorise a frame right after segmenting it, so the
timed work is the same: segment s, memorise s, ..., segment T-1. The official
frames/s over all frames 1..T-1 (with frame 0's memorisation) is in the JSON
too (``fps_all``).

Threads. Without ``--threads`` both sides use every CPU this process may run
on: torch gets ``torch.set_num_threads(N)`` with N = that count, and XLA's CPU
client sizes its thread pool from the CPUs it may run on. With ``--threads T``
each child (official and ours) is pinned to the first T of those CPUs with
``os.sched_setaffinity`` before it starts (no ``taskset`` binary needed), and
the official child also gets ``torch.set_num_threads(T)``; both get
``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = T. The pinning is what caps XLA:
XLA's CPU client has no thread-count option (JAX 0.12 exposes none), and
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` does not cap it (checked: a
jitted convolution still kept 4 threads busy on this 2-core machine with that
flag, and one thread once the process was pinned to one CPU). So "same
threads" means: the same set of CPUs for both, and torch's intra-op pool of
the same size; XLA may still start more threads than T, but they share the T
CPUs.

Printed: the CPU model, ``os.getloadavg()`` before and after, the date, the
torch and jax versions, and one markdown table with, per side, frames/s
(median over the repeats, and min-max), CPU seconds per timed frame (all
threads of the child, median), compile s (ours only), the peak RSS of the
child (``VmHWM``, GB = 1e9 bytes, median), the ratio ours/official of the
median frames/s, and the share of pixels where our mask equals the official
one, on frame 1 and over frames 1..T-1: a sanity check of the setup (frame 1,
the first predicted frame, gives ~99.9-100 % with the same weights, clip and
settings, far less otherwise; later frames add float32 drift, which the
random STM weights make chaotic: see docs/parity.md). ``--json OUT`` writes
every run.

Clips: ``bike480`` (the real 4-frame 480x854 ``bike`` clip, 2 objects),
``judo480`` (the real 16-frame ``judo``), ``long270`` (the 200 ``bedroom``
frames resized to 270x480 with the synthetic 2-object first-frame mask,
built by ``parity_drift.prepare_clip``); ``--frames N`` keeps the first N.
"""

import argparse
import datetime
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from memvos_jax.apps import machine

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import parity_drift  # noqa: E402

PROG = 'vs_official'
HERE = pathlib.Path(__file__).resolve().parent
FIXTURE = {'stcn': 'stcn_random', 'stm': 'stm_random', 'afb_urr': 'afb_urr_random',
           'sam2': 'sam2_random'}
MODELS = sorted(FIXTURE)
REAL_CLIPS = {'bike480': 'bike', 'judo480': 'judo'}
CLIPS = sorted(REAL_CLIPS) + ['long270']
MEM_EVERY, TOP_K = 5, 20
UPDATE_RATE, MERGE_THRES = 0.1, 0.95


# ------------------------------------------------------------------- setup


def davis_tree(work, root, name):
  """A DAVIS-2017 tree under work/davis of symlinks to the generic clip ``root/*/name``."""
  davis = work / 'davis'
  for kind in ('JPEGImages', 'Annotations'):
    link = davis / kind / '480p' / name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
      link.unlink()
    link.symlink_to((root / kind / name).resolve())
  (davis / 'ImageSets' / '2017').mkdir(parents=True, exist_ok=True)
  (davis / 'ImageSets' / '2017' / 'val.txt').write_text(name + '\n')
  return davis


def prepare_clip(work, clip, frames):
  """(generic root, DAVIS root, frames T) for ``clip`` cut to ``frames`` (0: all)."""
  if clip == 'long270':
    n = frames or 200
    sub = work / f'long270_{n}'
    sub.mkdir(parents=True, exist_ok=True)
    root, davis = parity_drift.prepare_clip(sub, n)   # name 'long270'
    return root, davis, n
  real = common.real_frames(REAL_CLIPS[clip])
  n = min(frames, len(real)) if frames else len(real)
  sub = work / f'{clip}_{n}'
  root = sub / 'clips'
  common.write_clip(root, clip, real[:n],
                    common.REAL / 'Annotations' / REAL_CLIPS[clip] / '00000.png')
  return root, davis_tree(sub, root, clip), n


def official_weights(work, model, torch_python):
  """The fixture as an official ``.pth`` (``make_checkpoint.py``, in the torch Python)."""
  out = work / f'{model}.pth'
  if not out.exists():
    tmp = work / f'.{model}.pth.tmp'
    subprocess.run([torch_python, str(common.FIXTURES / 'make_checkpoint.py'), FIXTURE[model],
                    str(tmp)], check=True)
    tmp.rename(out)
  return out


def allowed_cpus():
  return sorted(os.sched_getaffinity(0))


def child_env_and_pin(threads):
  """(env, preexec_fn) for a child: ``--threads`` pins it to the first T CPUs."""
  env = dict(os.environ)
  if not threads:
    return env, None
  cpus = set(allowed_cpus()[:threads])
  for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    env[var] = str(threads)
  return env, lambda: os.sched_setaffinity(0, cpus)


def run_child(cmd, env, preexec, timeout, what):
  tic = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=preexec,
                          timeout=timeout)
  except subprocess.TimeoutExpired:
    common.die(PROG, f'{what}: no result after {timeout} s:\n  ' + ' '.join(map(str, cmd)))
  if proc.returncode != 0:
    common.die(PROG, f'{what} failed (exit {proc.returncode}):\n  ' + ' '.join(map(str, cmd))
               + '\n' + proc.stderr[-6000:])
  return time.perf_counter() - tic


# ---------------------------------------------------------------- ours child


def run_ours(args):
  """In our venv: the clip through ``ClipSegmenter.run`` on pre-decoded frames; saves an .npz."""
  if args.dtype == 'bfloat16':
    from memvos_jax.inference.dtypes import bf16_kernels  # noqa: E402
    bf16_kernels()       # XLA_FLAGS before JAX starts (the weights load starts it)
  config, net, variables, load_s = common.load_model(args.model, args.weights)
  from memvos_jax.data import video_folder  # noqa: E402
  options = config.inference.to_dict()
  options.update(chunk=args.chunk, memory_capacity=0, return_probs=False, dtype=args.dtype)
  if args.model in ('stcn', 'stm'):
    options.update(mem_every=MEM_EVERY)
  if args.model == 'stcn':
    options.update(top_k=TOP_K)
  if args.model == 'afb_urr':
    options.update(budget=args.budget, update_rate=UPDATE_RATE, thres_close=MERGE_THRES)
  seg = common.make_segmenter(net, variables, **options)
  clip, ann = common.open_clip(args.clips_root, args.clip)
  n = len(clip.frame_paths)
  # Decode the whole clip before the timed loop, as the official datasets do.
  tic = time.perf_counter()
  proc = video_folder.processing_size(ann.size, seg.size)
  chunks = [(s, video_folder.resize_frames(f, proc))
            for s, f in video_folder.FrameReader(clip, seg.chunk, ann.size)]
  masks = {i: video_folder.resize_ids(m, proc) for i, m in ann.masks.items()}
  decode_s = time.perf_counter() - tic
  out = np.zeros((n,) + tuple(ann.size), np.uint8)
  frame_done = np.zeros(n)
  cpu_at_first = []

  def keep(i, ids, _):
    if not cpu_at_first:          # right after the first chunk: where steady time starts
      cpu_at_first.append(time.process_time())
    out[i] = ids
    frame_done[i] = time.perf_counter() - tic
  tic = time.perf_counter()
  steady_s, steady_n, first_s = seg.run(
      chunks, masks, n, proc, keep, where=clip.annotation_paths[ann.first_frame],
      out_size=tuple(ann.size) if tuple(proc) != tuple(ann.size) else None)
  seconds = time.perf_counter() - tic
  cpu_steady = time.process_time() - cpu_at_first[0]
  import jax  # noqa: E402
  np.savez_compressed(
      args.child_out, masks=out, seconds=seconds, steady_seconds=steady_s,
      steady_frames=steady_n, first_chunk_frames=n - steady_n, compile_seconds=first_s,
      cpu_seconds=cpu_steady, frame_done=frame_done, load_seconds=load_s,
      decode_seconds=decode_s, trace_count=seg.trace_count,
      peak_rss_gb=common.peak_rss_gb(), jax=jax.__version__, backend=jax.default_backend(),
      objects=len(ann.labels), cpus=len(os.sched_getaffinity(0)))


# ------------------------------------------------------------------ parent


def summarize_official(run, s, n):
  """frames/s and CPU s/frame over frames s..T-1 from the official frame marks."""
  timed = float(run['seconds']) - float(run['frame_starts'][s])
  cpu = float(run['cpu_seconds']) - float(run['frame_cpu'][s])
  return dict(fps=(n - s) / timed if timed > 0 else None, timed_seconds=timed,
              cpu_per_frame=cpu / (n - s), fps_all=(n - 1) / float(run['seconds']),
              compile_seconds=None, peak_rss_gb=float(run['peak_rss_gb']))


def summarize_ours(run, n):
  steady, frames = float(run['steady_seconds']), int(run['steady_frames'])
  return dict(fps=frames / steady if steady > 0 and frames else None, timed_seconds=steady,
              cpu_per_frame=float(run['cpu_seconds']) / frames if frames else None,
              compile_seconds=float(run['compile_seconds']),
              peak_rss_gb=float(run['peak_rss_gb']), load_seconds=float(run['load_seconds']),
              decode_seconds=float(run['decode_seconds']), trace_count=int(run['trace_count']))


def med(values):
  values = [v for v in values if v is not None]
  return float(np.median(values)) if values else None


def spread(values, nd):
  values = [v for v in values if v is not None]
  if not values:
    return '—'
  text = f'{np.median(values):.{nd}f}'
  if len(values) > 1:
    text += f' ({min(values):.{nd}f}–{max(values):.{nd}f})'
  return text


def agreement(a, b):
  """% of pixels where the two [T, H, W] label maps agree: (frame 1, frames 1..T-1, per frame)."""
  per_frame = [100.0 * float((a[t] == b[t]).mean()) for t in range(len(a))]
  return per_frame[1], float(np.mean(per_frame[1:])), per_frame


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--official-src', help='checkout of the official repository of --model')
  parser.add_argument('--model', choices=MODELS, required=True)
  parser.add_argument('--torch-python',
                      default=os.environ.get('MEMVOS_TORCH_PYTHON', '/tmp/torchenv/bin/python'),
                      help='a Python with torch and torchvision (the official code runs there)')
  parser.add_argument('--clip', default='long270', choices=CLIPS)
  parser.add_argument('--frames', type=int, default=0, help='keep the first N frames (0: all)')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--threads', type=int, default=0,
                      help='pin both sides to T CPUs, torch.set_num_threads(T) (0: all CPUs)')
  parser.add_argument('--chunk', type=int, default=0,
                      help='our frames per chunk = frames excluded from timing (0: min(8, T//2))')
  parser.add_argument('--budget', type=int, default=300_000, help='AFB-URR feature budget')
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'),
                      help="ours: inference.dtype (the official side is float32; for sam2 "
                           "in bfloat16 the official code also runs under CPU autocast)")
  parser.add_argument('--workdir', default='/tmp/memvos_vs_official',
                      help='weights (.pth), clips and run outputs are kept here')
  parser.add_argument('--timeout', type=float, default=None, help='seconds allowed per run')
  parser.add_argument('--json', help='write every run and the summary to this JSON file')
  parser.add_argument('--child-ours', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--weights', help=argparse.SUPPRESS)
  parser.add_argument('--clips-root', help=argparse.SUPPRESS)
  parser.add_argument('--child-out', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child_ours:
    run_ours(args)
    return
  if not args.official_src:
    common.die(PROG, f'--official-src DIR is needed: a checkout of the official {args.model} code'
               + (' (facebookresearch/sam2)' if args.model == 'sam2' else ''))
  src = os.path.abspath(os.path.expanduser(args.official_src))
  if not os.path.isdir(src):
    common.die(PROG, f'--official-src {src}: not a directory')
  if not os.path.exists(args.torch_python):
    common.die(PROG, f'--torch-python {args.torch_python}: not found')
  if args.threads and args.threads > len(allowed_cpus()):
    common.die(PROG, f'--threads {args.threads}: only {len(allowed_cpus())} CPUs available')
  if args.repeats < 1:
    common.die(PROG, '--repeats must be >= 1')
  common.check_shared(PROG, [common.FIXTURES / 'make_checkpoint.py',
                             common.FIXTURES / FIXTURE[args.model],
                             common.REAL / 'JPEGImages' / 'bedroom',
                             common.REAL / 'JPEGImages' / 'bike'])

  work = pathlib.Path(args.workdir)
  work.mkdir(parents=True, exist_ok=True)
  started = datetime.datetime.now()
  load_before = machine.loadavg()
  root, davis, n = prepare_clip(work, args.clip, args.frames)
  if n < 2:
    common.die(PROG, f'the clip needs at least 2 frames, has {n}')
  chunk = args.chunk or max(1, min(8, n // 2))
  if chunk >= n:
    common.die(PROG, f'--chunk {chunk} leaves no timed frame in a {n}-frame clip')
  weights = official_weights(work, args.model, args.torch_python)
  threads = args.threads or len(allowed_cpus())
  env, preexec = child_env_and_pin(args.threads)
  runs_dir = work / 'runs'
  runs_dir.mkdir(exist_ok=True)
  stamp = started.strftime('%Y%m%d-%H%M%S')
  print(f'# {args.model} {args.clip}: {n} frames, our chunk {chunk} (frames 0..{chunk - 1} '
        f'not timed), {threads} threads{" (pinned)" if args.threads else ""}; work dir {work}',
        flush=True)

  official_cmd = [args.torch_python, str(HERE / 'official_runner.py'), '--model', args.model,
                  '--src', src, '--davis-root', str(davis), '--clip', args.clip,
                  '--weights', str(weights), '--threads', str(threads),
                  '--mem-every', str(MEM_EVERY), '--top-k', str(TOP_K),
                  '--budget', str(args.budget), '--update-rate', str(UPDATE_RATE),
                  '--merge-thres', str(MERGE_THRES)]
  ours_cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), '--child-ours',
              '--model', args.model, '--weights', str(weights), '--clips-root', str(root),
              '--clip', args.clip, '--chunk', str(chunk), '--budget', str(args.budget),
              '--dtype', args.dtype]
  runs = []
  masks = {}
  # SAM 2 in bfloat16: the official predictor under torch.autocast too ('official_bf16'),
  # the agreement reference (its speed is not the ratio's: that is float32's).
  sides = ('official', 'ours') + (
      ('official_bf16',) if args.model == 'sam2' and args.dtype == 'bfloat16' else ())
  repeat_masks_same = {side: True for side in sides}
  for r in range(args.repeats):
    for side in sides:
      out = runs_dir / f'{stamp}_{args.model}_{args.clip}{n}_{side}_{r}.npz'
      cmd = {'official': official_cmd + ['--out', str(out)],
             'official_bf16': official_cmd + ['--bf16', '--out', str(out)],
             'ours': ours_cmd + ['--child-out', str(out)]}[side]
      wall = run_child(cmd, env, preexec, args.timeout, f'{side} run {r + 1}')
      data = dict(np.load(out))
      s = chunk
      official = side != 'ours'
      summary = summarize_official(data, s, n) if official else summarize_ours(data, n)
      if side == 'ours' and int(data['first_chunk_frames']) != s:
        common.die(PROG, f"ours: first chunk had {int(data['first_chunk_frames'])} frames, "
                   f'expected {s}')
      if side not in masks:
        masks[side] = data['masks']
      elif not np.array_equal(masks[side], data['masks']):
        repeat_masks_same[side] = False
      run = dict(side=side, repeat=r, child_wall_seconds=wall, npz=str(out), **summary)
      run['torch' if official else 'jax'] = str(data['torch'] if official else data['jax'])
      if official:
        run['torch_threads'] = int(data['torch_threads'])
        run['frame_starts'] = [float(x) for x in data['frame_starts']]
      else:
        run['objects'] = int(data['objects'])
      runs.append(run)
      print(f"[{r + 1}/{args.repeats}] {side}: {common.fmt(run['fps'], 3)} frames/s over "
            f"frames {s}..{n - 1} ({run['timed_seconds']:.1f} s), CPU "
            f"{common.fmt(run['cpu_per_frame'], 2)} s/frame, compile "
            f"{common.fmt(run['compile_seconds'], 1)} s, peak RSS {run['peak_rss_gb']:.2f} GB; "
            f'child wall {wall:.0f} s; load {machine.loadavg()}', flush=True)
  load_after = machine.loadavg()

  h, w = masks['ours'].shape[1:]
  objects = next(r['objects'] for r in runs if r['side'] == 'ours')
  agree_first, agree, agree_frames = agreement(masks['ours'], masks['official'])
  by = {side: [r for r in runs if r['side'] == side] for side in sides}
  fps = {side: med([r['fps'] for r in by[side]]) for side in by}
  torch_version = by['official'][0]['torch']
  jax_version = by['ours'][0]['jax']
  header = ['model', 'clip (frames, HxW, objects)', 'side',
            f'frames/s, frames {chunk}..{n - 1}: median (min–max)', 'CPU s/frame',
            'compile s', 'peak RSS GB', 'ours/official',
            f'masks = official, % px: frame 1 / frames 1..{n - 1}']
  clip_cell = f'{args.clip} ({n}, {h}x{w}, {objects})'
  rows = []
  labels = {'official': f'official (torch {torch_version})',
            'official_bf16': f'official (torch {torch_version}, CPU autocast bfloat16)',
            'ours': f'ours (jax {jax_version}, {args.dtype})'}
  bf16_agreement = None
  if 'official_bf16' in masks:
    # Ours and the official code in bfloat16 against each other and against the official
    # float32 run: two bf16 implementations agree about as well as either agrees with float32.
    pairs = {'ours_vs_official_bf16': ('ours', 'official_bf16'),
             'official_bf16_vs_official': ('official_bf16', 'official'),
             'ours_vs_official': ('ours', 'official')}
    bf16_agreement = {k: agreement(masks[a], masks[b])[1] for k, (a, b) in pairs.items()}
  for side in sides:
    rs = by[side]
    rows.append([
        args.model, clip_cell, labels[side],
        spread([r['fps'] for r in rs], 3), spread([r['cpu_per_frame'] for r in rs], 2),
        spread([r['compile_seconds'] for r in rs], 1) if side == 'ours' else '— (none)',
        spread([r['peak_rss_gb'] for r in rs], 2),
        (f"{fps['ours'] / fps['official']:.2f}x" if side == 'ours' and fps['ours']
         and fps['official'] else ''),
        f'{agree_first:.2f} / {agree:.2f}' if side == 'ours' else (
            f"{bf16_agreement['official_bf16_vs_official']:.2f} (frames 1..{n - 1})"
            if side == 'official_bf16' else '')])
  finished = datetime.datetime.now()
  lines = [
      '',
      f'# {started:%Y-%m-%d %H:%M} – {finished:%H:%M}; CPU: {machine.describe()} '
      f'({len(allowed_cpus())} CPUs usable, {os.cpu_count()} online); '
      f'load average (1, 5, 15 min) before {load_before}, after {load_after}',
      f'# torch {torch_version} ({by["official"][0]["torch_threads"]} threads), '
      f'jax {jax_version}; threads: {threads}'
      + (f' (both pinned to CPUs {allowed_cpus()[:args.threads]})' if args.threads else
         ' (all CPUs, no pinning)')
      + f'; {args.repeats} repeat(s), alternating official, ours',
      f'# timed: the inference loop over frames {chunk}..{n - 1} only (weights loaded and all '
      f'frames decoded before it on both sides); ours after its first chunk of {chunk} '
      'frames (compile s = that chunk), official from the start of its frame '
      f'{chunk}. Masks compared over frames 1..{n - 1}'
      + ('' if all(repeat_masks_same.values()) else
         f'; NOTE: masks differ between repeats: {repeat_masks_same}'),
      '',
      common.markdown_table(header, rows)]
  if bf16_agreement:
    lines.append(
        f"# bfloat16 masks, % px over frames 1..{n - 1}: ours = official bf16 "
        f"{bf16_agreement['ours_vs_official_bf16']:.2f}; official bf16 = official float32 "
        f"{bf16_agreement['official_bf16_vs_official']:.2f}; ours = official float32 "
        f"{bf16_agreement['ours_vs_official']:.2f}")
  print('\n'.join(lines))
  if args.json:
    common.write_json(args.json, dict(
        model=args.model, clip=args.clip, frames=n, size=[int(h), int(w)], objects=objects,
        chunk=chunk, dtype=args.dtype, threads=threads, pinned=bool(args.threads),
        repeats=args.repeats,
        official_src=src, weights=str(weights), cpu_model=machine.info()['cpu_model'],
        loadavg_before=load_before, loadavg_after=load_after, started=started.isoformat(),
        finished=finished.isoformat(), torch=torch_version, jax=jax_version,
        fps_median=fps, ratio_ours_official=(fps['ours'] / fps['official']
                                             if fps['ours'] and fps['official'] else None),
        mask_agreement_percent=agree, mask_agreement_frame1_percent=agree_first,
        mask_agreement_per_frame=agree_frames, bf16_mask_agreement_percent=bf16_agreement,
        repeat_masks_identical=repeat_masks_same, runs=runs))


if __name__ == '__main__':
  main()
