"""``python -m memvos_jax segment``: a video (file or frame folder) + a mask -> masks, overlays.

Writes into ``--out``: ``masks/<frame>.png`` (indexed, the input mask's
palette and ids), ``overlay.mp4``, ``overlay.gif``, ``contact_sheet.png`` and
``objects.json`` (per frame and object: area and bounding box). Frames are
decoded lazily and processed in chunks; with ``--size`` they are segmented at
that shorter side and the masks restored to the video's size.
"""

import argparse
import collections
import json
import os
import pathlib
import sys
import time

import numpy as np
import tqdm
from PIL import Image

from memvos_jax import api, visualize
from memvos_jax.data import video_file, video_folder
from memvos_jax.errors import CheckpointError, InputError


def read_mask(path, size) -> tuple[np.ndarray, list[int]]:
  """An indexed ('P') or greyscale-ids ('L') PNG of frame size ``size`` -> (ids, palette)."""
  try:
    im = Image.open(path)
    im.load()
  except (OSError, ValueError) as e:
    raise InputError(path, f'cannot read mask: {e}') from None
  if im.mode not in ('P', 'L'):
    raise InputError(path, f'mask mode {im.mode} is not a palette or greyscale-with-ids '
                     'PNG; save it as an indexed PNG (0 = background, 1..N = objects)')
  ids = np.array(im)
  if ids.shape != tuple(size):
    raise InputError(path, f'mask is {ids.shape[1]}x{ids.shape[0]} but the video is '
                     f'{size[1]}x{size[0]}')
  if not ids.any():
    raise InputError(path, 'mask has no object (all pixels are 0)')
  palette = im.getpalette() if im.mode == 'P' else None
  palette = (palette + [0] * 768)[:768] if palette else video_folder.davis_palette()
  return ids, palette


def open_video(path, chunk):
  """A chunk iterator for a video file or a folder of frames, plus (num_frames, fps, size)."""
  if os.path.isdir(path):
    frames = sorted(p for p in os.listdir(path)
                    if p.lower().endswith(('.jpg', '.jpeg', '.png')) and not p.startswith('.'))
    if not frames:
      raise InputError(path, 'no frames (.jpg/.png) in folder')
    paths = tuple(pathlib.Path(path, p) for p in frames)
    size = video_folder.read_frame(paths[0]).shape[:2]
    clip = video_folder.Clip(os.path.basename(os.path.normpath(path)), paths, {})
    return video_folder.FrameReader(clip, chunk, size), len(paths), 24.0, size
  reader = video_file.VideoReader(path, chunk)
  return reader, reader.num_frames, reader.fps, reader.frame_size


def run(args) -> int:
  reader, num_frames, fps, size = open_video(args.video, args.chunk)
  mask, palette = read_mask(args.mask, size)
  if not 0 <= args.mask_frame < num_frames:
    raise InputError(args.mask, f'--mask-frame {args.mask_frame} is outside the video '
                     f'(0..{num_frames - 1})')
  options = {k: v for k, v in (('mem_every', args.mem_every), ('top_k', args.top_k))
             if v is not None}                 # model-specific; None = the config's
  seg = api.load(args.model, args.checkpoint, memory_capacity=args.capacity,
                 chunk=args.chunk, **options)
  shorter = seg.clip.size if args.size is None else args.size   # None: the config's
  proc = video_folder.processing_size(size, shorter)
  mask = video_folder.resize_ids(mask, proc)
  os.makedirs(os.path.join(args.out, 'masks'), exist_ok=True)
  native = collections.OrderedDict()       # frame index -> native frame (current chunk)
  stats, sheet = {}, []
  sheet_every = max(1, num_frames // 8)

  def chunks():
    for start, frames in reader:
      for i, f in enumerate(frames):
        native[start + i] = f
      yield start, video_folder.resize_frames(frames, proc)

  t0 = time.perf_counter()
  with visualize.OverlayVideoWriter(os.path.join(args.out, 'overlay.mp4'), fps) as mp4, \
       visualize.GifWriter(os.path.join(args.out, 'overlay.gif'), num_frames) as gif, \
       tqdm.tqdm(total=num_frames, unit='frame', desc=os.path.basename(args.video),
                 file=sys.stderr) as bar:

    def on_frame(i, ids, probs):
      del probs
      frame = native.pop(i)
      video_folder.write_mask(os.path.join(args.out, 'masks', f'{i:05d}.png'), ids, palette)
      shown = visualize.overlay(frame, ids, palette)
      mp4.write(shown)
      gif.write(shown)
      if i % sheet_every == 0 and len(sheet) < 8:
        sheet.append(shown)
      stats[i] = {str(k): v for k, v in visualize.object_stats(ids).items()}

    seg.clip.run(chunks(), {args.mask_frame: mask}, num_frames, proc, on_frame,
                  progress=bar, where=args.mask, out_size=tuple(size))
  dt = time.perf_counter() - t0
  Image.fromarray(visualize.contact_sheet(sheet)).save(os.path.join(args.out, 'contact_sheet.png'))
  with open(os.path.join(args.out, 'objects.json'), 'w') as f:
    json.dump({'frames': num_frames, 'size': list(size), 'objects': stats}, f)
  print(f'{num_frames} frames in {dt:.1f}s ({num_frames / dt:.2f} frames/s incl. '
        f'compilation); results in {args.out}')
  return 0


def add_parser(sub) -> None:
  p = sub.add_parser('segment', help='segment a video from a mask', description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--video', required=True, help='video file (mp4/webm/avi/...) or folder of frames')
  p.add_argument('--mask', required=True, help='indexed (or greyscale-ids) PNG of the objects')
  p.add_argument('--mask-frame', type=int, default=0, help='frame the mask belongs to')
  p.add_argument('--model', default='default',
                 help='default (the shipped model), stcn, stm, afb_urr, sam2, rpm')
  p.add_argument('--checkpoint', default='',
                 help='official .pth/.npz or orbax folder (default model: its shipped weights)')
  p.add_argument('--out', required=True)
  p.add_argument('--size', type=int, default=None,
                 help="process at this shorter side (0: native; default: the model config's)")
  p.add_argument('--mem-every', type=int, default=None, help="memory every N frames (default: the model config's)")
  p.add_argument('--top-k', type=int, default=None, help="STCN top-k (default: the config's, 20)")
  p.add_argument('--capacity', type=int, default=20, help='memory frames kept (bounded memory)')
  p.add_argument('--chunk', type=int, default=8)
  p.set_defaults(func=run)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m memvos_jax')
  sub = parser.add_subparsers(required=True)
  add_parser(sub)
  args = parser.parse_args(argv)
  try:
    return args.func(args)
  except (InputError, CheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
