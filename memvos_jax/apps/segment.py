"""``python -m memvos_jax segment``: a video (file or frame folder) + masks -> masks, overlays.

Writes into ``--out``: ``masks/<frame>.png`` (indexed, the first mask's
palette and the masks' ids), ``overlay.mp4``, ``overlay.gif`` (at the video's
speed), ``contact_sheet.png`` (with frame numbers) and ``objects.json`` (per
frame and object: area and bounding box). Frames are decoded lazily and
processed in chunks; with ``--size`` they are segmented at that shorter side
and the masks restored to the video's size.

``--mask FRAME:PATH`` may be repeated: the objects of each mask are added on
its frame (objects that appear later in the video); ``--mask PATH`` is frame
``--mask-frame`` (0). Binary 0/255 masks are one object each, numbered 1, 2,
... in frame order. The settings used are printed in one line at the start
(the memory is bounded to ``--capacity`` frames, 20 by default, where eval.py
uses the config's 0 = unbounded).

The results appear in ``--out`` only once all of them are written; a run that
fails leaves ``<out>.FAILED`` (the reason) beside it, and whatever ``--out``
held before is kept. The output folder is checked writable before the model
is loaded, and the inputs are read before jax is imported: a bad argument is
reported at once.
"""

import argparse
import collections
import json
import os
import pathlib
import sys
import time
import warnings

import numpy as np
import tqdm
from PIL import Image

from memvos_jax.apps import cli_report, visualize
from memvos_jax.data import mask_levels, outputs, video_file, video_folder
from memvos_jax.errors import CheckpointError, InputError

DEFAULT_CAPACITY = 20    # memory frames: bounded, for long videos
FOLDER_FPS = 24.0        # frame folders without --fps


def parse_mask_arg(text: str, default_frame: int) -> tuple[int, str]:
  """'12:path.png' -> (12, 'path.png'); 'path.png' -> (default_frame, 'path.png')."""
  frame, sep, path = text.partition(':')
  if sep and frame.strip().isdigit() and path and not os.path.exists(text):
    return int(frame), path
  return default_frame, text


def read_mask(path, size) -> tuple[np.ndarray, list[int] | None]:
  """An indexed ('P') or greyscale-ids ('L') PNG of frame size ``size`` -> (ids, palette)."""
  try:
    with Image.open(path) as im:
      im.load()
      mode = im.mode
      palette = im.getpalette() if mode == 'P' else None
      ids = np.array(im)
  except (OSError, ValueError) as e:
    raise InputError(path, f'cannot read mask: {e}') from None
  if mode not in ('P', 'L'):
    raise InputError(path, f'mask mode {mode} is not a palette or greyscale-with-ids '
                     'PNG; save it as an indexed PNG (0 = background, 1..N = objects)')
  if ids.shape != tuple(size):
    raise InputError(path, f'mask is {ids.shape[1]}x{ids.shape[0]} but the video is '
                     f'{size[1]}x{size[0]}')
  if not ids.any():
    raise InputError(path, 'mask has no object (all pixels are 0)')
  return ids, ((palette + [0] * 768)[:768] if palette else None)


def read_masks(specs, size, num_frames: int):
  """The ``--mask`` arguments -> ({frame: ids}, palette); ids as eval.py reads them."""
  masks, paths, palette = {}, {}, None
  for frame, path in specs:
    if not 0 <= frame < num_frames:
      raise InputError(path, f'mask frame {frame} is outside the video (0..{num_frames - 1})')
    if frame in masks:
      raise InputError(path, f'a second mask for frame {frame} (the first: {paths[frame]})')
    masks[frame], pal = read_mask(path, size)
    paths[frame] = path
    palette = palette or pal
  binary = all(mask_levels.kind(m) != 'ids' for m in masks.values())
  masks = video_folder.object_ids(masks, paths)   # 0/255 and anti-aliased masks: one object
  if binary:    # each 0/255 mask is its own object: 1, 2, ... in frame order
    masks = {f: m * (k + 1) for k, (f, m) in enumerate(sorted(masks.items()))}
  seen = set()
  for frame in sorted(masks):
    ids = set(np.unique(masks[frame]).tolist()) - {0}
    if ids and ids <= seen:
      warnings.warn(f'{paths[frame]}: objects {sorted(ids)} were all given on an earlier '
                    'frame; a later mask only adds new objects, so this one is not used')
    seen |= ids
  return masks, palette or video_folder.davis_palette()


def open_video(path, chunk, fps=None):
  """A chunk iterator for a video file or a folder of frames, plus (num_frames, fps, size)."""
  if os.path.isdir(path):
    frames = sorted(p for p in os.listdir(path)
                    if p.lower().endswith(('.jpg', '.jpeg', '.png')) and not p.startswith('.'))
    if not frames:
      raise InputError(path, 'no frames (.jpg/.png) in folder')
    paths = tuple(pathlib.Path(path, p) for p in frames)
    size = video_folder.read_frame(paths[0]).shape[:2]
    clip = video_folder.Clip(os.path.basename(os.path.normpath(path)), paths, {})
    return video_folder.FrameReader(clip, chunk, size), len(paths), fps or FOLDER_FPS, size
  reader = video_file.VideoReader(path, chunk)
  return reader, reader.num_frames, fps or reader.fps, reader.frame_size


def check_out(out) -> None:
  """``--out`` (or, if it does not exist yet, its parent) is a writable folder."""
  out = pathlib.Path(os.path.abspath(out))
  if out.exists() and not out.is_dir():
    raise InputError(out, 'output folder is a file (choose another path or remove it)')
  outputs.check_writable(out if out.exists() else out.parent)


def settings_line(seg, args, shorter, fps) -> str:
  """The settings in effect, one line."""
  options = dict(seg.clip.options, dtype=seg.clip.dtype_label())
  opts = ', '.join(f'{k} {v}' for k, v in sorted(options.items()))
  size = f'{shorter} px shorter side' if shorter else 'native size'
  capacity = (f'{seg.memory_capacity} frames' if seg.memory_capacity
              else '0 (unbounded, as eval.py)')
  return (f'settings: {args.model} model, {size}, {opts}, memory capacity {capacity} '
          f'(--capacity; eval.py\'s configs use 0 = unbounded), chunk {args.chunk}, '
          f'{fps:g} fps')


def run(args) -> int:
  """The ``segment`` command; a failure after the output check leaves ``<out>.FAILED``."""
  check_out(args.out)
  try:
    return _run(args)
  except (InputError, CheckpointError) as e:
    outputs.mark_failed(args.out, str(e))
    raise


def _run(args) -> int:
  reader, num_frames, fps, size = open_video(args.video, args.chunk, args.fps)
  specs = [parse_mask_arg(m, args.mask_frame) for m in args.mask]
  masks, palette = read_masks(specs, size, num_frames)
  options = {k: v for k, v in (('mem_every', args.mem_every), ('top_k', args.top_k),
                                ('dtype', args.dtype))
             if v is not None}                 # model-specific; None = the config's
  from memvos_jax import api     # jax and the models: only once the inputs are good
  seg = api.load(args.model, args.checkpoint, memory_capacity=args.capacity,
                 chunk=args.chunk, **options)
  shorter = seg.clip.size if args.size is None else args.size   # None: the config's
  print(settings_line(seg, args, shorter, fps), file=sys.stderr)
  proc = video_folder.processing_size(size, shorter)
  masks = {f: video_folder.resize_ids(m, proc) for f, m in masks.items()}
  with outputs.staged(args.out, merge=True) as tmp:
    dt = _segment(seg, reader, masks, num_frames, proc, size, fps, palette, tmp,
                  args.video, specs[0][1])
  print(f'{num_frames} frames in {dt:.1f}s ({num_frames / dt:.2f} frames/s incl. '
        f'compilation); results in {args.out}')
  return 0


def _segment(seg, reader, masks, num_frames, proc, size, fps, palette, out, video,
             first_mask) -> float:
  """Segment and write every result into the folder ``out``; returns the seconds taken."""
  os.makedirs(os.path.join(out, 'masks'))
  native = collections.OrderedDict()       # frame index -> native frame (current chunk)
  stats, sheet, sheet_frames = {}, [], []
  sheet_every = max(1, num_frames // 8)

  def chunks():
    for start, frames in reader:
      for i, f in enumerate(frames):
        native[start + i] = f
      yield start, video_folder.resize_frames(frames, proc)

  t0 = time.perf_counter()
  with visualize.OverlayVideoWriter(os.path.join(out, 'overlay.mp4'), fps) as mp4, \
       visualize.GifWriter(os.path.join(out, 'overlay.gif'), num_frames, fps=fps) as gif, \
       tqdm.tqdm(total=num_frames, unit='frame', desc=os.path.basename(video),
                 file=sys.stderr) as bar:

    def on_frame(i, ids, probs):
      del probs
      frame = native.pop(i)
      video_folder.write_mask(os.path.join(out, 'masks', f'{i:05d}.png'), ids, palette)
      shown = visualize.overlay(frame, ids, palette)
      mp4.write(shown)
      gif.write(shown)
      if i % sheet_every == 0 and len(sheet) < 8:
        sheet.append(shown)
        sheet_frames.append(f'frame {i}')
      stats[i] = {str(k): v for k, v in visualize.object_stats(ids).items()}

    seg.clip.run(chunks(), masks, num_frames, proc, on_frame, progress=bar,
                 where=first_mask, out_size=tuple(size))
  dt = time.perf_counter() - t0
  Image.fromarray(visualize.contact_sheet(sheet, labels=sheet_frames)).save(
      os.path.join(out, 'contact_sheet.png'))
  with open(os.path.join(out, 'objects.json'), 'w') as f:
    json.dump({'frames': num_frames, 'size': list(size), 'fps': fps, 'objects': stats}, f)
  return dt


def add_parser(sub) -> None:
  p = sub.add_parser('segment', help='segment a video from masks', description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--video', required=True, help='video file (mp4/webm/avi/...) or folder of frames')
  p.add_argument('--mask', required=True, action='append', metavar='[FRAME:]PATH',
                 help='indexed (or greyscale-ids) PNG of the objects on FRAME (default '
                 '--mask-frame); repeat for objects that appear later (0/255 masks: one '
                 'object each, numbered in frame order)')
  p.add_argument('--mask-frame', type=int, default=0,
                 help='frame of the masks given without FRAME: (default 0)')
  p.add_argument('--model', default='default',
                 help='default (the shipped model), stcn, stm, afb_urr, sam2, rpm')
  p.add_argument('--checkpoint', default='',
                 help='official .pth/.npz or orbax folder (default model: its shipped weights)')
  p.add_argument('--out', required=True)
  p.add_argument('--size', type=int, default=None,
                 help="process at this shorter side (0: native; default: the model config's)")
  p.add_argument('--mem-every', type=int, default=None,
                 help="memory every N frames (default: the model config's)")
  p.add_argument('--top-k', type=int, default=None, help="STCN top-k (default: the config's)")
  p.add_argument('--dtype', default=None, choices=('float32', 'bfloat16', 'auto'),
                 help="compute dtype (default: the config's); auto: bfloat16 on GPUs, TPUs "
                 'and CPUs with AMX / AVX-512-BF16, else float32')
  p.add_argument('--capacity', type=int, default=DEFAULT_CAPACITY,
                 help='memory frames kept (bounded memory; 0: as many as the official '
                 f'unbounded memory, as eval.py; default {DEFAULT_CAPACITY})')
  p.add_argument('--chunk', type=int, default=8)
  p.add_argument('--fps', type=float, default=None,
                 help=f'frame rate of the overlays (default: the video\'s; frame folders: '
                 f'{FOLDER_FPS:g})')
  p.set_defaults(func=run)


def _check_numbers(args) -> None:
  for name in ('chunk',) + (('fps',) if args.fps is not None else ()):
    if not getattr(args, name) > 0:
      raise InputError(f'--{name}', f'must be > 0, got {getattr(args, name)}')
  if args.capacity < 0:
    raise InputError('--capacity', f'must be >= 0, got {args.capacity}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m memvos_jax')
  sub = parser.add_subparsers(required=True)
  add_parser(sub)
  args = parser.parse_args(argv)
  cli_report.one_line_warnings()
  try:
    _check_numbers(args)
    return args.func(args)
  except (InputError, CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
