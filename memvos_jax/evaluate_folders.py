"""The body of ``eval.py``: every clip of a data root through ClipSegmenter."""

import sys
import time

import tqdm

from memvos_jax import pipeline
from memvos_jax.data import video_folder
from memvos_jax.errors import CheckpointError, InputError


def run(config, workdir: str) -> int:
  """Segment ``config.data`` into ``workdir``; returns a process exit code."""
  if not config.data.root:
    print('error: set --config.data.root to a DAVIS or YouTube-VOS folder', file=sys.stderr)
    return 2
  clips_arg = [c for c in config.data.clips.split(',') if c] or None
  try:
    clips = video_folder.find_clips(config.data.root, clips_arg)
    model = pipeline.build_model(config)
    variables = pipeline.load_variables(config, model)
  except (InputError, CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  inf = config.inference
  seg = pipeline.ClipSegmenter(model, variables, mem_every=inf.mem_every, top_k=inf.top_k,
                               memory_capacity=inf.memory_capacity, chunk=inf.chunk,
                               max_objects=inf.max_objects)
  failed, results = [], []
  t0 = time.perf_counter()
  for clip in clips:
    with tqdm.tqdm(total=len(clip.frame_paths), desc=clip.name, unit='frame',
                   file=sys.stderr) as bar:
      try:
        results.append(seg.segment(clip, workdir, progress=bar))
      except InputError as e:
        failed.append(clip.name)
        tqdm.tqdm.write(f'error: {e}', file=sys.stderr)
  total = time.perf_counter() - t0
  frames = sum(r.frames for r in results)
  steady_f = sum(r.steady_frames for r in results)
  steady_s = sum(r.seconds for r in results)
  compile_s = sum(r.compile_seconds for r in results)
  steady = f'{steady_f / steady_s:.3f}' if steady_f and steady_s else 'n/a'
  print(f'{len(results)} clips, {frames} frames in {total:.1f}s: '
        f'{frames / max(total, 1e-9):.3f} frames/s overall, {steady} frames/s after '
        f'the first chunk of each clip (first chunks: {compile_s:.1f}s incl. '
        f'compilation). Masks in {workdir}')
  if failed:
    print(f'{len(failed)} clip(s) failed: {", ".join(failed)}', file=sys.stderr)
    return 1
  return 0
