"""The body of ``eval.py``: every clip of a data root through ClipSegmenter.

A clip whose every frame has a ground-truth annotation (DAVIS) is scored with
the official semi-supervised J&F protocol and the table is printed; clips
with sparse annotations (YouTube-VOS) cannot be scored locally: their masks
are the submission (``workdir/<clip>/<frame>.png``; zip them under
``Annotations/`` for the evaluation server).
"""

import os
import sys
import time
import traceback

import numpy as np
from PIL import Image
import tqdm

from memvos_jax import metrics
from memvos_jax import registry
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.data import outputs, video_folder
from memvos_jax.errors import CheckpointError, InputError
from memvos_jax.apps.evaluate import format_table
from memvos_jax.metrics import summary


def run(config, workdir: str) -> int:
  """Segment ``config.data`` into ``workdir``; returns a process exit code.

  The workdir is checked writable and the clip list read before the model is
  loaded. Each clip is written atomically (``outputs.staged``); a clip that
  fails is reported in one line, recorded as ``workdir/<clip>.FAILED`` and
  the run goes on; the exit code is then 1.
  """
  if not config.data.root:
    print('error: set --config.data.root to a DAVIS or YouTube-VOS folder', file=sys.stderr)
    return 2
  clips_arg = [c for c in config.data.clips.split(',') if c] or None
  try:
    outputs.check_writable(workdir)
    names = video_folder.clip_names(config.data.root, clips_arg)
    model = registry.build_model(config)
    variables = registry.load_variables(config, model)
  except (InputError, CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  inf = config.inference
  seg = ClipSegmenter(registry.get(config.model), model, variables, **inf.to_dict())
  failed, results, scored, unscored = [], [], [], []
  t0 = time.perf_counter()
  found = []
  for name in names:
    try:
      found.append(video_folder.find_clip(config.data.root, name))
    except InputError as e:
      failed.append(_fail(workdir, name, e))
  todo = list(_batches(found, seg.batch_clips))
  while todo:
    batch = todo.pop(0)
    dense = [len(c.annotation_paths) == len(c.frame_paths) >= 3 for c in batch]
    preds = [{} for _ in batch]
    keeps = [(lambda i, ids, probs, p=p: p.__setitem__(i, ids)) if d else None
             for p, d in zip(preds, dense)]
    desc = batch[0].name if len(batch) == 1 else f'{batch[0].name} +{len(batch) - 1}'
    with tqdm.tqdm(total=sum(len(c.frame_paths) for c in batch), desc=desc, unit='frame',
                   file=sys.stderr) as bar:
      try:
        results.extend(seg.segment_batch(batch, workdir, progress=bar, on_frames=keeps))
      except Exception as e:  # bad input, or a bug: these clips fail, the run goes on
        if len(batch) > 1:    # run them one by one: a bad clip must not fail the others
          todo[:0] = [[c] for c in batch]
        else:
          failed.append(_fail(workdir, batch[0].name, e))
        continue
    for clip, d, p in zip(batch, dense, preds):
      if d:
        try:
          scored.extend(_score_clip(clip, p))
        except ValueError as e:  # e.g. an object absent from the first frame
          print(f'{clip.name}: not scored ({e})', file=sys.stderr)
      else:
        unscored.append(clip.name)
  total = time.perf_counter() - t0
  frames = sum(r.frames for r in results)
  steady_f = sum(r.steady_frames for r in results)
  steady_s = sum(r.seconds for r in results)
  compile_s = sum(r.compile_seconds for r in results)
  steady = f'{steady_f / steady_s:.3f}' if steady_f and steady_s else 'n/a'
  print(f'{len(results)} clips, {frames} frames in {total:.1f}s ({seg.dtype_label()}): '
        f'{frames / max(total, 1e-9):.3f} frames/s overall, {steady} frames/s after '
        f'the first chunk of each clip (first chunks: {compile_s:.1f}s incl. '
        f'compilation). Masks in {workdir}')
  if scored:
    _report(scored, workdir)
  if unscored:
    print(f'{len(unscored)} clip(s) have sparse annotations (YouTube-VOS style) and '
          f'cannot be scored locally; their masks in {workdir}/<clip>/ are the '
          'submission layout (zip them under Annotations/).')
  if failed:
    print(f'{len(failed)} clip(s) failed, no output written for them (reasons in '
          f'{workdir}/<clip>.FAILED): {", ".join(failed)}', file=sys.stderr)
    return 1
  return 0


def _batches(clips, n: int):
  """Consecutive clips whose first frames have one size, ``n`` (or fewer) at a time."""
  batch, size = [], None
  for clip in clips:
    try:
      with Image.open(clip.frame_paths[0]) as im:   # the header only
        this = im.size
    except (OSError, ValueError):   # unreadable: alone in its batch, segment_batch says why
      this = clip.name
    if batch and (len(batch) == max(n, 1) or this != size):
      yield batch
      batch = []
    batch.append(clip)
    size = this
  if batch:
    yield batch


def _fail(workdir: str, name: str, e: Exception) -> str:
  """Report a failed clip in one line and leave ``<clip>.FAILED``; returns the name."""
  folder = os.path.join(workdir, name)
  details = ''
  if isinstance(e, InputError):
    reason = str(e)
  else:
    details = ''.join(traceback.format_exception(e))
    reason = (f'{name}: internal error ({type(e).__name__}: {" ".join(str(e).split())[:300]}); '
              f'the traceback is in {outputs.failed_marker(folder)}')
  if os.path.isdir(folder):
    reason += f' (the folder {folder} is from an earlier run)'
  outputs.mark_failed(folder, reason, details)
  tqdm.tqdm.write(f'error: {reason}', file=sys.stderr)
  return name


def _score_clip(clip, preds) -> list[dict]:
  """J&F rows (one per object) of a densely annotated clip."""
  gt = video_folder.read_annotations(clip)
  t = len(clip.frame_paths)
  gt_masks = np.stack([gt.masks[i] for i in range(t)])
  pred_masks = np.stack([preds[i] for i in range(t)])
  per_object = metrics.score_sequence(gt_masks, pred_masks)
  return [{'Sequence': f'{clip.name}_{k}', **{c: r[c] for c in summary.GLOBAL_COLUMNS[1:]}}
          for k, r in per_object.items()]


def _report(rows: list[dict], workdir: str) -> None:
  """Print and save the official-format tables for the scored clips."""
  g = summary.global_row(rows)
  print('--------------------------- Global results ---------------------------')
  print(format_table([g], summary.GLOBAL_COLUMNS))
  print('---------- Per sequence results ----------')
  print(format_table(rows, summary.SEQUENCE_COLUMNS))
  with open(os.path.join(workdir, 'global_results.csv'), 'w') as f:
    f.write(summary.csv_text([g], summary.GLOBAL_COLUMNS))
  with open(os.path.join(workdir, 'per-sequence_results.csv'), 'w') as f:
    f.write(summary.csv_text(rows, summary.SEQUENCE_COLUMNS))
