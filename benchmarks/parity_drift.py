"""Long-clip drift, three ways: the official code with oneDNN, without it, and ours.

On a long clip small float32 differences (summation order, kernels) change a
few pixels' argmax, and those changes are memorised and carried forward. This
script measures how large that drift is for the official code itself
(oneDNN convolutions on vs off: the same weights and code, only the CPU
kernels differ) and for us against both official runs. If ours drifts from
the official runs no more than the official code drifts from itself, the
difference is float32 noise, not semantics.

    python benchmarks/parity_drift.py --official-src stcn=~/STCN \
        --official-src afb_urr=~/AFB-URR --torch-python ~/torchenv/bin/python \
        [--model stcn --model afb_urr] [--frames 200] [--workdir /tmp/drift]

Clip: the first ``--frames`` ``bedroom`` frames of ``../shared/data/real_clips``
resized to 270x480 with the synthetic two-object first-frame mask of the
benchmarks (``long270``). Weights: the random-init fixtures (``../shared/fixtures``).
STCN: mem_every 5, top_k 20, unbounded memory (the official setting).
AFB-URR: budget ``--afb-budget`` (default 20000: 6666 features per class, about
13 frames, so LFU removal runs on most updates), update rate 0.1, threshold 0.95.

Printed per model: for each pair of runs, the mean, worst-frame and
per-quarter-of-the-clip share of pixels whose argmax agrees, the first frame
where that share falls below 99.9 %, and the mean and
worst-frame share of probabilities within 2/255; for AFB-URR
the largest relative bank-size difference after any update. The official
runs are cached in the work dir (``--rerun`` repeats them).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as common  # noqa: E402

PROG = 'parity_drift'
HERE = pathlib.Path(__file__).resolve().parent
CLIP = 'long270'
FIXTURE = {'stcn': 'stcn_random', 'afb_urr': 'afb_urr_random'}


def prepare_clip(work, frames_n):
  """Generic layout under work/clips and a DAVIS-2017 tree under work/davis (symlinks)."""
  bedroom = common.real_frames('bedroom')[:frames_n]
  if len(bedroom) < frames_n:
    common.die(PROG, f'expected {frames_n} bedroom frames in {common.REAL}, found {len(bedroom)}')
  frames = common.resized_frames(work, bedroom, 270, 480, f'bedroom{frames_n}')
  root = work / 'clips'
  common.write_clip(root, CLIP, frames, common.synthetic_mask(270, 480))
  davis = work / 'davis'
  for kind in ('JPEGImages', 'Annotations'):
    link = davis / kind / '480p' / CLIP
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
      link.unlink()
    link.symlink_to((root / kind / CLIP).resolve())
  (davis / 'ImageSets' / '2017').mkdir(parents=True, exist_ok=True)
  (davis / 'ImageSets' / '2017' / 'val.txt').write_text(CLIP + '\n')
  return root, davis


def official_weights(work, model, torch_python):
  """The fixture as an official-format .pth (``make_checkpoint.py``, needs torch)."""
  out = work / f'{model}.pth'
  if not out.exists():
    subprocess.run([torch_python, str(common.FIXTURES / 'make_checkpoint.py'), FIXTURE[model],
                    str(out)], check=True)
  return out


def run_official(work, model, src, torch_python, davis, mkldnn, args, rerun):
  out = work / f'official_{model}_{"onednn" if mkldnn else "native"}.npz'
  if out.exists() and not rerun:
    return out
  cmd = [torch_python, str(HERE / 'official_runner.py'), '--model', model, '--src', src,
         '--davis-root', str(davis), '--clip', CLIP,
         '--weights', str(official_weights(work, model, torch_python)),
         '--out', str(out), '--threads', str(args.threads), '--mem-every', '5',
         '--top-k', '20', '--budget', str(args.afb_budget)]
  if not mkldnn:
    cmd.append('--no-mkldnn')
  subprocess.run(cmd, check=True)
  return out


def run_ours_child(model, npz, clips_root, out, budget):
  """In a subprocess: our pipeline on the clip, probabilities and masks saved to ``out``."""
  config, net, variables, _ = common.load_model(model, npz)
  options = config.inference.to_dict()
  options.update(return_probs=True, chunk=8)
  if model == 'stcn':
    options.update(mem_every=5, top_k=20, memory_capacity=0)
  else:
    options.update(budget=budget, memory_capacity=0)
  seg = common.make_segmenter(net, variables, **options)
  clip, ann = common.open_clip(clips_root, CLIP)
  n = len(clip.frame_paths)
  probs = np.zeros((n, len(ann.labels) + 1) + tuple(ann.size), np.uint8)
  masks = np.zeros((n,) + tuple(ann.size), np.uint8)

  def keep(i, ids, p):
    masks[i] = ids
    probs[i] = np.round(np.asarray(p) * 255)
  tic = time.perf_counter()
  seg.segment(clip, out_dir=None, on_frame=keep)
  np.savez_compressed(out, masks=masks, probs_u8=probs, seconds=time.perf_counter() - tic)


def agreement(a, b):
  """Per frame 1..T-1: share of equal argmax, and of probabilities within 2/255."""
  am, bm = a['masks'], b['masks']
  n = min(len(am), len(bm))
  same = (am[:n] == bm[:n]).reshape(n, -1).mean(1)
  close = (np.abs(a['probs_u8'][:n].astype(np.int16) - b['probs_u8'][:n]) <= 2)
  close = close.reshape(n, -1).mean(1)
  return same[1:], close[1:]


def quarters(x):
  """Means of ``x`` over its four consecutive quarters."""
  return [part.mean() for part in np.array_split(x, 4)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--official-src', action='append', default=[],
                      help='MODEL=DIR: a checkout of the official repository')
  parser.add_argument('--torch-python', default=os.environ.get('MEMVOS_TORCH_PYTHON', 'python3'),
                      help='a Python with torch and torchvision (the official code runs there)')
  parser.add_argument('--model', action='append', choices=sorted(FIXTURE))
  parser.add_argument('--frames', type=int, default=200)
  parser.add_argument('--afb-budget', type=int, default=20000)
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--workdir', default='/tmp/memvos_drift')
  parser.add_argument('--rerun', action='store_true', help='repeat cached official runs')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  parser.add_argument('--child-out', help=argparse.SUPPRESS)
  args = parser.parse_args()
  work = pathlib.Path(args.workdir)
  if args.child:
    run_ours_child(args.child, common.fixture_npz(work, FIXTURE[args.child],
                                                  f'{args.child}.npz'),
                   work / 'clips', args.child_out, args.afb_budget)
    return
  srcs = dict(s.split('=', 1) for s in args.official_src)
  models = args.model or sorted(FIXTURE)
  for m in models:
    if m not in srcs:
      common.die(PROG, f'--official-src {m}=DIR is needed (a checkout of the official {m} code)')
  common.check_shared(PROG, [common.REAL / 'JPEGImages' / 'bedroom', common.FIXTURES])
  work.mkdir(parents=True, exist_ok=True)
  _, davis = prepare_clip(work, args.frames)
  lines = []
  for m in models:
    runs = {}
    for mkldnn in (True, False):
      name = 'official oneDNN' if mkldnn else 'official native'
      runs[name] = dict(np.load(run_official(work, m, os.path.expanduser(srcs[m]),
                                             args.torch_python, davis, mkldnn, args,
                                             args.rerun)))
    ours = work / f'ours_{m}.npz'
    if not ours.exists() or args.rerun:
      subprocess.run([sys.executable, __file__, '--child', m, '--child-out', str(ours),
                      '--workdir', str(work), '--afb-budget', str(args.afb_budget)],
                     check=True)
    runs['ours'] = dict(np.load(ours))
    lines.append(f'\n{m}: {args.frames} frames 270x480, 2 objects; seconds: ' + ', '.join(
        f"{k} {float(v['seconds']):.0f}" for k, v in runs.items()))
    rows = []
    for a, b in (('official oneDNN', 'official native'), ('ours', 'official oneDNN'),
                 ('ours', 'official native')):
      same, close = agreement(runs[a], runs[b])
      below = np.flatnonzero(same < 0.999)
      rows.append([f'{a} vs {b}', f'{100 * same.mean():.2f}', f'{100 * same.min():.2f}',
                   ' / '.join(f'{100 * q:.2f}' for q in quarters(same)),
                   str(below[0] + 1) if len(below) else 'none',
                   f'{100 * close.mean():.2f}', f'{100 * close.min():.2f}'])
    lines.append(common.markdown_table(
        ['runs compared', 'argmax agree % (mean)', '(worst frame)', '(mean per quarter)',
         'first frame < 99.9 %',
         'probs within 2/255 % (mean)', '(worst frame)'], rows))
    if m == 'afb_urr':
      on, off = runs['official oneDNN'], runs['official native']
      rel = np.abs(on['bank_after'] - off['bank_after']) / np.maximum(on['bank_after'], 1)
      lines.append(f"bank sizes, official oneDNN vs native: largest difference "
                   f"{100 * rel.max():.2f} % ({int(np.abs(on['bank_after'] - off['bank_after']).max())} "
                   f"features); LFU removals per class: {on['removed'].sum(0).tolist()}")
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
