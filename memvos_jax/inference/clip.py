"""Clip-level driver: stream a clip (folder or arrays) through a family's scan, write PNGs.

``ClipSegmenter`` is what ``eval.py``, the Python API and training
validation use. It is handed the model's ``Family`` (``models/family.py``),
the built network and its weights (``registry.build_model``, ``load_variables``).
"""

import concurrent.futures
import contextlib
import dataclasses
import os
import time

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.data import outputs, video_folder
from memvos_jax.errors import InputError
from memvos_jax.inference.core import FrameInput, make_chunk_fn
from memvos_jax.inference.dtypes import bf16_kernels
from memvos_jax.inference.objects import ObjectSlots
from memvos_jax.memory.bank import bucket_capacity


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

  def __init__(self, family, model, variables, memory_capacity=0, chunk=8, max_objects=0,
               return_probs=False, size=0, batch_clips=1, **options):
    """``family``: the model's ``Family``; ``options`` are its inference settings
    (``family.make_settings``; STCN: mem_every, top_k).

    ``size``: segment at this shorter side (0: the frames' own size); masks are
    restored to the frames' size (bilinear on the probabilities, then argmax).
    ``batch_clips``: how many clips eval.py gives ``segment_batch`` at a time.
    """
    self.model, self.variables, self.size = model, variables, size
    self.batch_clips = batch_clips
    self.family = family
    self.options = options
    # An unknown option fails here, not mid-clip; 'auto' is resolved (the same every call).
    self.dtype = self.family.make_settings(**options).dtype
    if self.dtype == 'bfloat16':
      bf16_kernels()
    self.memory_capacity, self.chunk = memory_capacity, chunk
    self.max_objects, self.return_probs = max_objects, return_probs
    self._fns = {}
    self._cast = None           # (dtype, variables cast to it): bf16 mode casts once
    self.trace_count = 0

  def dtype_label(self) -> str:
    """The compute dtype in effect, for the settings lines: ``'bfloat16 (auto)'``."""
    return self.dtype + (' (auto)' if self.options.get('dtype') == 'auto' else '')

  def variables_for(self, dtype: str):
    """The weights in the compute ``dtype`` of a program (float32: as loaded)."""
    if dtype == 'float32':
      return self.variables
    if self._cast is None or self._cast[0] != dtype:
      self._cast = (dtype, self.family.cast_variables(self.variables, dtype))
    return self._cast[1]

  def settings(self, capacity: int, out_size=None):
    """The compiled program's static settings for a memory of ``capacity`` slots."""
    return self.family.make_settings(
        capacity=max(capacity, 1), chunk=self.chunk, return_probs=self.return_probs,
        out_size=None if out_size is None else tuple(out_size), **self.options)

  def chunk_fn(self, settings, batch: bool = False):
    """The jitted chunk function for ``settings`` (compiled once per clip shape);
    ``batch``: vmapped over a leading clip axis of the state and the frames."""
    if (settings, batch) not in self._fns:
      def count():
        self.trace_count += 1
      self._fns[settings, batch] = make_chunk_fn(self.model, settings, self.family.step,
                                                 on_trace=count, batch=batch)
    return self._fns[settings, batch]

  def segment(self, clip: video_folder.Clip, out_dir: str | None = None,
              progress=None, on_frame=None) -> ClipResult:
    """Run one clip folder; write ``out_dir/<clip>/<frame>.png`` if out_dir is given.

    The PNGs are written into a temporary sibling folder that is renamed to
    ``out_dir/<clip>`` once every frame is written (``outputs.staged``): a clip
    that fails leaves no folder (and a previous run's folder is kept).
    ``on_frame(index, ids [H, W] uint8, probs [K+1, H, W] | None)`` sees every frame.
    """
    return self.segment_batch([clip], out_dir, progress, [on_frame])[0]

  def segment_batch(self, clips: list[video_folder.Clip], out_dir: str | None = None,
                    progress=None, on_frames=None) -> list[ClipResult]:
    """``segment`` for clips of one frame size, run together through one vmapped
    scan (one clip: the plain scan). If one clip fails, none is written. The
    batch's timing is in the first result (the others: 0 s, 0 steady frames)."""
    on_frames = on_frames or [None] * len(clips)
    targets = [os.path.join(out_dir, c.name) if out_dir else None for c in clips]
    pending = []
    with contextlib.ExitStack() as stack:
      folders = [stack.enter_context(outputs.staged(t)) if t else None for t in targets]
      writer = concurrent.futures.ThreadPoolExecutor(2)
      # Exits run last-in first-out: the PNG writers stop before a failed clip's
      # staging folder is removed (a write in flight would otherwise outlive it).
      stack.callback(writer.shutdown, wait=True, cancel_futures=True)
      jobs, sizes = [], set()
      for clip, folder, on_frame in zip(clips, folders, on_frames):
        ann = video_folder.read_annotations(clip)
        sizes.add(tuple(ann.size))
        if len(sizes) > 1:
          raise InputError(clip.frame_paths[0], f'a batch needs one frame size: {ann.size} '
                           f'here, {sorted(sizes - {tuple(ann.size)})[0]} before')
        jobs.append(self._folder_job(clip, ann, folder, on_frame, writer, pending))
      size = sizes.pop()
      proc = video_folder.processing_size(size, self.size)
      out_size = size if proc != size else None
      stats = self.run_batch(jobs, proc, out_size, progress)
      for f in pending:
        f.result()
    none = (0.0, 0, 0.0)
    return [ClipResult(c.name, len(c.frame_paths), *(stats if i == 0 else none), t)
            for i, (c, t) in enumerate(zip(clips, targets))]

  def _folder_job(self, clip, ann, folder, on_frame, writer, pending) -> 'BatchJob':
    """A clip folder as a scan job: frames read and resized in chunks, PNGs written by
    ``writer`` into ``folder`` (futures appended to ``pending``)."""
    proc = video_folder.processing_size(ann.size, self.size)

    def emit(i, frame_ids, probs):
      if on_frame is not None:
        on_frame(i, frame_ids, probs)
      if folder:
        stem = os.path.splitext(os.path.basename(clip.frame_paths[i]))[0]
        pending.append(writer.submit(video_folder.write_mask,
                                     os.path.join(folder, stem + '.png'),
                                     frame_ids, ann.palette))

    chunks = ((s, video_folder.resize_frames(f, proc))
              for s, f in video_folder.FrameReader(clip, self.chunk, ann.size))
    masks = {i: video_folder.resize_ids(m, proc) for i, m in ann.masks.items()}
    return BatchJob(chunks, masks, len(clip.frame_paths), emit,
                    where=clip.annotation_paths[ann.first_frame])

  def segment_arrays(self, frames, masks: dict[int, np.ndarray]) -> np.ndarray:
    """frames [T, H, W, 3] uint8, masks {frame: [H, W] ids} -> [T, H, W] uint8 ids."""
    return self.segment_arrays_batch([(frames, masks)])[0]

  def segment_arrays_batch(self, clips) -> list[np.ndarray]:
    """[(frames [T, H, W, 3] uint8, masks {frame: [H, W] ids}), ...] -> [T, H, W] ids each.

    Clips of the same frame size run together through one vmapped scan; a
    single clip (or a size of its own) runs the plain scan.
    """
    clips = [(np.asarray(f), m) for f, m in clips]
    outs = [np.zeros(f.shape[:3], np.uint8) for f, _ in clips]
    groups: dict[tuple, list[int]] = {}
    for c, (frames, _) in enumerate(clips):
      groups.setdefault(tuple(frames.shape[1:3]), []).append(c)
    for size, members in groups.items():
      proc = video_folder.processing_size(size, self.size)
      out_size = size if proc != size else None
      jobs = [self._array_job(*clips[c], proc, outs[c]) for c in members]
      self.run_batch(jobs, proc, out_size)
    return outs

  def _array_job(self, frames, masks, proc, out) -> 'BatchJob':
    """An array clip as a scan job writing its ids into ``out`` [T, H, W]."""
    chunks = ((s, video_folder.resize_frames(frames[s:s + self.chunk], proc))
              for s in range(0, len(frames), self.chunk))
    masks = {i: video_folder.resize_ids(np.asarray(m, np.uint8), proc) for i, m in masks.items()}
    return BatchJob(chunks, masks, len(frames), lambda i, ids, probs: out.__setitem__(i, ids))

  def _slots(self, masks, where, num_objects=0) -> ObjectSlots:
    """The clip's objects in ``num_objects`` slots (0: ``max_objects`` or as many as objects)."""
    slots = ObjectSlots.from_masks(masks, num_objects or self.max_objects)
    if not len(slots):
      raise InputError(where, 'no object in any mask (every pixel is 0, background)')
    if self.max_objects and len(slots) > self.max_objects:
      raise InputError(where, f'{len(slots)} objects but max_objects is {self.max_objects}')
    return slots

  def _capacity(self, slots, num_frames: int) -> int:
    """``memory_capacity``, or (0) what the clip's schedule writes, bucketed where the
    family allows it (one compile for clips of one frame size)."""
    if self.memory_capacity:
      return self.memory_capacity
    need = self.family.memory_frames(num_frames, set(slots.given_frames()), self.options)
    return bucket_capacity(need) if self.family.bucket_memory else need

  def _chunk_input(self, start, frames, masks, slots, num_frames, size) -> FrameInput:
    """One chunk's scan input (numpy): ``frames`` [n <= chunk, H, W, 3], padded to ``chunk``.

    Each object is given once, on the first frame that annotates it; ``frames``
    None (a clip of a batch that has ended) gives a chunk of padding only.
    """
    h, w = size
    t, k = self.chunk, slots.max_objects
    n = 0 if frames is None else len(frames)
    images = np.zeros((t, h, w, 3), np.uint8)
    if n:
      images[:n] = frames
    annotation = np.zeros((t, h, w), np.uint8)
    given = np.zeros((t, k), bool)
    given_frames = slots.given_frames()
    for i in range(n):
      new_objects = given_frames.get(start + i)
      if new_objects:
        annotation[i] = slots.to_slots(masks[start + i])
        given[i] = slots.given(new_objects)
    index = np.arange(start, start + t, dtype=np.int32)
    return FrameInput(image=images, annotation=annotation, given=given, index=index,
                      is_last=index == num_frames - 1, valid=np.arange(t) < n,
                      num_frames=np.full(t, num_frames, np.int32))

  def run(self, chunks, masks: dict[int, np.ndarray], num_frames: int, size,
          on_frame, progress=None, where='annotations', out_size=None):
    """The scan over ``chunks`` = iterable of (start, frames [n<=chunk, H, W, 3]).

    ``masks`` maps frame index -> [H, W] object ids. Each object is given once,
    on the first frame that annotates it (DAVIS: frame 0 for all; YouTube-VOS:
    where it appears); later annotations of known objects (dense ground
    truth) are never fed to the network. Returns (steady seconds, steady
    frames, first-chunk seconds); the first chunk includes compilation.
    """
    return self.run_batch([BatchJob(chunks, masks, num_frames, on_frame, where)], size,
                          out_size, progress)

  def run_batch(self, jobs: list['BatchJob'], size, out_size=None, progress=None):
    """Clips of one frame ``size`` through one scan; returns ``run``'s timing stats.

    One job runs the plain scan. Several run one vmapped scan: every clip gets
    the batch's largest object count and memory capacity (slots a clip does
    not use are never given, so never active), and a clip that ends early is
    fed padding frames (``valid`` False: its state is kept). Equal to running
    the clips one by one, up to float rounding of the batched programs.
    """
    batch = len(jobs) > 1
    slots = [self._slots(j.masks, j.where) for j in jobs]
    k = max(s.max_objects for s in slots)
    if batch:
      slots = [self._slots(j.masks, j.where, k) for j in jobs]
    capacity = max(self._capacity(s, j.num_frames) for s, j in zip(slots, jobs))
    settings = self.settings(capacity, out_size)
    fn = self.chunk_fn(settings, batch=batch)
    variables = self.variables_for(settings.dtype)
    state = self.family.init_state(self.model, settings, k, size)
    if batch:
      state = jax.tree.map(lambda a: jnp.stack([a] * len(jobs)), state)
    chunks = [iter(j.chunks) for j in jobs]
    t_first = t_start = None
    first_n = 0
    while True:
      got = [next(c, None) for c in chunks]      # (start, frames), None: that clip ended
      if all(g is None for g in got):
        break
      got = [g or (0, None) for g in got]
      xs = [self._chunk_input(start, f, j.masks, s, j.num_frames, size)
            for (start, f), j, s in zip(got, jobs, slots)]
      xs = jax.tree.map(lambda *a: np.stack(a), *xs) if batch else xs[0]
      tic = time.perf_counter()
      state, out = fn(variables, state, xs)
      out_masks = np.asarray(out.mask).reshape((len(jobs), self.chunk) + out.mask.shape[-2:])
      probs = (np.asarray(out.probs).reshape((len(jobs), self.chunk) + out.probs.shape[-3:])
               if self.return_probs else None)
      n = sum(0 if f is None else len(f) for _, f in got)
      if t_first is None:
        t_first, t_start, first_n = time.perf_counter() - tic, time.perf_counter(), n
      for b, ((start, frames), j, s) in enumerate(zip(got, jobs, slots)):
        for i in range(0 if frames is None else len(frames)):
          j.on_frame(start + i, s.to_ids(out_masks[b, i]),
                     None if probs is None else probs[b, i])
      if progress is not None:
        progress.update(n)
    steady = time.perf_counter() - t_start if t_start else 0.0
    return steady, sum(j.num_frames for j in jobs) - first_n, t_first or 0.0


@dataclasses.dataclass
class BatchJob:
  """One clip of ``ClipSegmenter.run_batch``: its chunks, masks and output callback."""
  chunks: Any                      # iterable of (start, frames [n <= chunk, H, W, 3])
  masks: dict[int, np.ndarray]     # frame -> [H, W] object ids
  num_frames: int
  on_frame: Callable[[int, np.ndarray, np.ndarray | None], None]
  where: str = 'annotations'
