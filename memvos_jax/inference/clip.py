"""Clip-level driver: stream a clip (folder or arrays) through a family's scan, write PNGs.

``ClipSegmenter`` is what ``eval.py``, the Python API and training
validation use; the network and its weights come from ``families.loading``
(``build_model``, ``load_variables``).
"""

import concurrent.futures
import contextlib
import dataclasses
import os
import time

import numpy as np

from memvos_jax import families
from memvos_jax import outputs
from memvos_jax.data import video_folder
from memvos_jax.errors import InputError
from memvos_jax.inference.core import FrameInput, make_chunk_fn
from memvos_jax.inference.objects import ObjectSlots


@dataclasses.dataclass
class ClipResult:
  name: str
  frames: int
  seconds: float            # wall time after the first chunk (no compilation)
  steady_frames: int        # frames processed in ``seconds``
  compile_seconds: float    # wall time of the first chunk (includes compilation)
  masks_dir: str | None


class ClipSegmenter:
  """Segments DAVIS/YouTube-VOS clip folders with a memory network."""

  def __init__(self, model, variables, memory_capacity=0, chunk=8, max_objects=0,
               return_probs=False, size=0, **options):
    """``options`` are the model's inference settings (STCN: mem_every, top_k).

    ``size``: segment at this shorter side (0: the frames' own size); masks are
    restored to the frames' size (bilinear on the probabilities, then argmax).
    """
    self.model, self.variables, self.size = model, variables, size
    self.family = families.of(model)
    self.options = options
    self.family.make_settings(**options)   # an unknown option fails here, not mid-clip
    self.memory_capacity, self.chunk = memory_capacity, chunk
    self.max_objects, self.return_probs = max_objects, return_probs
    self._fns = {}
    self.trace_count = 0

  def settings(self, capacity: int, out_size=None):
    """The compiled program's static settings for a memory of ``capacity`` slots."""
    return self.family.make_settings(
        capacity=max(capacity, 1), chunk=self.chunk, return_probs=self.return_probs,
        out_size=None if out_size is None else tuple(out_size), **self.options)

  def chunk_fn(self, settings):
    """The jitted chunk function for ``settings`` (compiled once per clip shape)."""
    if settings not in self._fns:
      def count():
        self.trace_count += 1
      self._fns[settings] = make_chunk_fn(self.model, settings, self.family.step,
                                          on_trace=count)
    return self._fns[settings]

  def segment(self, clip: video_folder.Clip, out_dir: str | None = None,
              progress=None, on_frame=None) -> ClipResult:
    """Run one clip folder; write ``out_dir/<clip>/<frame>.png`` if out_dir is given.

    The PNGs are written into a temporary sibling folder that is renamed to
    ``out_dir/<clip>`` once every frame is written (``outputs.staged``): a clip
    that fails leaves no folder (and a previous run's folder is kept).
    ``on_frame(index, ids [H, W] uint8, probs [K+1, H, W] | None)`` sees every frame.
    """
    target = os.path.join(out_dir, clip.name) if out_dir else None
    with outputs.staged(target) if target else contextlib.nullcontext() as folder:
      stats = self._segment(clip, folder, progress, on_frame)
    return ClipResult(clip.name, len(clip.frame_paths), *stats, target)

  def _segment(self, clip, folder, progress, on_frame):
    """``segment`` writing into ``folder`` (or nowhere); returns the timing stats."""
    ann = video_folder.read_annotations(clip)
    writer = concurrent.futures.ThreadPoolExecutor(2)
    pending = []

    def emit(i, frame_ids, probs):
      if on_frame is not None:
        on_frame(i, frame_ids, probs)
      if folder:
        stem = os.path.splitext(os.path.basename(clip.frame_paths[i]))[0]
        pending.append(writer.submit(video_folder.write_mask,
                                     os.path.join(folder, stem + '.png'),
                                     frame_ids, ann.palette))

    proc = video_folder.processing_size(ann.size, self.size)
    chunks = ((s, video_folder.resize_frames(f, proc))
              for s, f in video_folder.FrameReader(clip, self.chunk, ann.size))
    masks = {i: video_folder.resize_ids(m, proc) for i, m in ann.masks.items()}
    try:
      stats = self.run(chunks, masks, len(clip.frame_paths), proc, emit, progress,
                       where=clip.annotation_paths[ann.first_frame],
                       out_size=ann.size if proc != tuple(ann.size) else None)
      for f in pending:
        f.result()
    finally:
      writer.shutdown(wait=True, cancel_futures=True)
    return stats

  def segment_arrays(self, frames, masks: dict[int, np.ndarray]) -> np.ndarray:
    """frames [T, H, W, 3] uint8, masks {frame: [H, W] ids} -> [T, H, W] uint8 ids."""
    frames = np.asarray(frames)
    out = np.zeros(frames.shape[:3], np.uint8)
    size = tuple(frames.shape[1:3])
    proc = video_folder.processing_size(size, self.size)
    chunks = ((s, video_folder.resize_frames(frames[s:s + self.chunk], proc))
              for s in range(0, len(frames), self.chunk))
    masks = {i: video_folder.resize_ids(np.asarray(m, np.uint8), proc) for i, m in masks.items()}
    self.run(chunks, masks, len(frames), proc, lambda i, ids, probs: out.__setitem__(i, ids),
             out_size=size if proc != size else None)
    return out

  def run(self, chunks, masks: dict[int, np.ndarray], num_frames: int, size,
          on_frame, progress=None, where='annotations', out_size=None):
    """The scan over ``chunks`` = iterable of (start, frames [n<=chunk, H, W, 3]).

    ``masks`` maps frame index -> [H, W] object ids. Each object is given once,
    on the first frame that annotates it (DAVIS: frame 0 for all; YouTube-VOS:
    where it appears); later annotations of known objects (dense ground
    truth) are never fed to the network. Returns (steady seconds, steady
    frames, first-chunk seconds); the first chunk includes compilation.
    """
    slots = ObjectSlots.from_masks(masks, self.max_objects)
    if not len(slots):
      raise InputError(where, 'no object in any mask (every pixel is 0, background)')
    if self.max_objects and len(slots) > self.max_objects:
      raise InputError(where, f'{len(slots)} objects but max_objects is {self.max_objects}')
    k = slots.max_objects
    given_frames = slots.given_frames()
    capacity = self.memory_capacity or self.family.memory_frames(
        num_frames, set(given_frames), self.options)
    settings = self.settings(capacity, out_size)
    fn = self.chunk_fn(settings)
    state = self.family.init_state(self.model, settings, k, size)
    h, w = size
    t = self.chunk
    t_first = t_start = None
    first_n = 0
    for start, frames in chunks:
      n = len(frames)
      images = np.zeros((t, h, w, 3), np.uint8)
      images[:n] = frames
      annotation = np.zeros((t, h, w), np.uint8)
      given = np.zeros((t, k), bool)
      for i in range(n):
        new_objects = given_frames.get(start + i)
        if new_objects:
          annotation[i] = slots.to_slots(masks[start + i])
          given[i] = slots.given(new_objects)
      index = np.arange(start, start + t, dtype=np.int32)
      xs = FrameInput(
          image=images, annotation=annotation, given=given, index=index,
          is_last=index == num_frames - 1, valid=np.arange(t) < n,
          num_frames=np.full(t, num_frames, np.int32))
      tic = time.perf_counter()
      state, out = fn(self.variables, state, xs)
      out_masks = np.asarray(out.mask[:n])
      probs = np.asarray(out.probs[:n]) if self.return_probs else None
      if t_first is None:
        t_first, t_start, first_n = time.perf_counter() - tic, time.perf_counter(), n
      for i in range(n):
        on_frame(start + i, slots.to_ids(out_masks[i]), None if probs is None else probs[i])
      if progress is not None:
        progress.update(n)
    steady = time.perf_counter() - t_start if t_start else 0.0
    return steady, num_frames - first_n, t_first or 0.0
