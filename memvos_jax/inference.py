"""Video inference for memory networks: one ``jax.lax.scan`` per chunk of frames.

The network is separate from the inference core: this module owns padding,
normalisation, the memory schedule and the object bookkeeping; the model is
used only through ``encode_key`` / ``encode_value`` / ``decode``.

Semantics follow the official STCN evaluation (``inference_core.py`` and, for
objects that first appear on later frames, ``inference_core_yv.py``):
  * frames are normalised with ImageNet statistics and zero-padded (centred)
    to a multiple of 16;
  * a frame carrying an annotation: the objects in it take their given mask
    (other objects' probabilities are zeroed inside it), the objects become
    active from that frame on, and the frame is written to memory (pinned);
  * otherwise a frame is written to memory when at least ``mem_every`` frames
    passed since the last memory frame, except for the last frame of the
    video; there is no temporary last-frame memory.
Every compiled function sees static shapes: a chunk of ``chunk`` frames, K
objects, a bank of ``capacity`` slots. A clip shape compiles once.
"""

import dataclasses
import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax import memory
from memvos_jax.models.aggregate import aggregate
from memvos_jax.models.layers import resize_bilinear

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
  """Static settings of one compiled inference program."""
  mem_every: int = 5
  top_k: int | None = 20
  capacity: int = 20
  chunk: int = 8
  return_probs: bool = False
  stride: int = 16
  # (H, W) to restore outputs to when frames were processed at another size:
  # probabilities are resized bilinearly (torch align_corners=False), then argmax.
  out_size: tuple[int, int] | None = None
  # Which unpinned slot a full bank overwrites: 'fifo' the oldest, 'lfu' the one
  # with the least read weight per frame of age (AFB-URR's LFU, memory.adaptive).
  eviction: str = 'fifo'

  def __post_init__(self):
    if self.eviction not in ('fifo', 'lfu'):
      raise ValueError(f"eviction must be 'fifo' or 'lfu', not {self.eviction!r}")


@flax.struct.dataclass
class FrameInput:
  """One frame of a chunk (the scan's xs); leading axis T inside a chunk."""
  image: jax.Array        # [H, W, 3] uint8 RGB
  annotation: jax.Array   # [H, W] uint8 object-slot map (0 = bg; slot i = object i-1)
  given: jax.Array        # [K] bool: objects whose mask this frame's annotation gives
  index: jax.Array        # [] int32 frame index in the video
  is_last: jax.Array      # [] bool: last frame of the video (never memorised)
  valid: jax.Array        # [] bool: False for padding frames of the last chunk
  num_frames: jax.Array | None = None  # [] int32 frames in the video (None: unknown, a stream)
  # [K+1, H, W] float32 probabilities (bg first) to memorise instead of the
  # prediction: teacher forcing, for parity tests (STM core); None: off.
  teacher: jax.Array | None = None


@flax.struct.dataclass
class FrameOutput:
  mask: jax.Array         # [H, W] uint8: 0 = bg, i = object slot i-1
  probs: jax.Array | None  # [K+1, H, W] float32 (bg first) if return_probs


@flax.struct.dataclass
class VideoState:
  """The scan carry: memory plus object bookkeeping."""
  bank: memory.MemoryBank
  active: jax.Array       # [K] bool: objects introduced so far
  last_mem: jax.Array     # [] int32: frame index of the last memory write


def pad_amounts(size, d=16):
  """Official ``pad_divide_by``: (top, bottom, left, right) centred zero padding."""
  h, w = size
  dh, dw = (-h) % d, (-w) % d
  return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def normalize_and_pad(image, stride=16, dtype=jnp.float32):
  """[H, W, 3] uint8 -> [Hp, Wp, 3] float32, ImageNet-normalised, zero padded after."""
  x = image.astype(dtype) / 255.0
  x = (x - IMAGENET_MEAN) / IMAGENET_STD
  t, b, l, r = pad_amounts(image.shape[:2], stride)
  return jnp.pad(x, ((t, b), (l, r), (0, 0)))


def init_state(settings: InferenceSettings, num_objects: int, size, key_dim: int,
               value_dim: int) -> VideoState:
  """Empty memory for a clip of frame size ``size`` = (H, W)."""
  t, b, l, r = pad_amounts(size, settings.stride)
  n = ((size[0] + t + b) // settings.stride) * ((size[1] + l + r) // settings.stride)
  bank = memory.init(settings.capacity, num_objects, n, key_dim, value_dim)
  return VideoState(bank=bank, active=jnp.zeros((num_objects,), bool),
                    last_mem=jnp.asarray(-(2 ** 30), jnp.int32))


def override_objects(objects, frame: FrameInput, pad):
  """Given objects take their annotated mask; the others are zeroed inside it.

  objects [K, Hp, Wp], pad = (top, bottom, left, right) ->
  (objects [K, Hp, Wp], region [Hp, Wp] bool: pixels some given object covers).
  """
  k = objects.shape[0]
  pt, pb, pl, pr = pad
  gt_ids = jnp.pad(frame.annotation.astype(jnp.int32), ((pt, pb), (pl, pr)))
  gt = (gt_ids[None] == jnp.arange(1, k + 1)[:, None, None]).astype(objects.dtype)
  gt = gt * frame.given[:, None, None]                                 # [K, Hp, Wp]
  region = jnp.sum(gt, axis=0) > 0.5
  merged = jnp.where(region[None], 0.0, objects)
  return jnp.where(frame.given[:, None, None], gt, merged), region


def merge_annotation(probs, frame: FrameInput, active, pad):
  """``override_objects``, then the official re-aggregation of the background.

  probs [K+1, Hp, Wp] (bg first) -> (probs [K+1, Hp, Wp] re-aggregated where
  the frame has an annotation, active [K] with the given objects added,
  has_annotation []).
  """
  has_ann = jnp.any(frame.given)
  merged, _ = override_objects(probs[1:], frame, pad)
  active = active | frame.given
  return jnp.where(has_ann, aggregate(merged, active), probs), active, has_ann


def frame_step(model, params, settings: InferenceSettings, state: VideoState,
               frame: FrameInput):
  """Segment one frame and update the memory. Pure; traced once per clip shape."""
  apply = functools.partial(model.apply, params)
  k = state.active.shape[0]
  h, w = frame.image.shape[:2]
  pt, pb, pl, pr = pad_amounts((h, w), settings.stride)
  image = normalize_and_pad(frame.image, settings.stride, state.bank.values.dtype)

  k16, f16_thin, f16, f8, f4 = apply(image[None], method='encode_key')
  hk, wk, ck = k16.shape[1:]
  query_key = k16[0].reshape(hk * wk, ck)                              # [Q, Ck]

  # Read memory and decode every object; skipped while no object is active
  # (frames before the first annotation, as the official loop never visits them).
  def predict(bank):
    readout, slot_weight = memory.read(bank, query_key, settings.top_k)
    readout = readout.reshape(k, hk, wk, -1)                          # [K, h, w, Cv]
    logits = apply(readout, f16_thin[0], f8, f4, method='decode')      # [K, Hp, Wp]
    probs = aggregate(jax.nn.sigmoid(logits), state.active)            # [K+1, Hp, Wp]
    return probs, bank.replace(usage=bank.usage + slot_weight)

  def nothing(bank):
    hp, wp = image.shape[:2]
    empty = jnp.zeros((k, hp, wp), image.dtype)
    return aggregate(empty, state.active), bank

  probs, bank = jax.lax.cond(jnp.any(state.active), predict, nothing, state.bank)

  # An annotation overrides the prediction for the objects it gives.
  probs, active, has_ann = merge_annotation(probs, frame, state.active, (pt, pb, pl, pr))

  # Memory schedule (official: every mem_every frames, never the last frame).
  due = (frame.index - state.last_mem >= settings.mem_every) & ~frame.is_last
  write = (has_ann | due) & jnp.any(active)

  def memorise(b):
    values = apply(image, f16[0], probs[1:], method='encode_value')    # [K, h, w, Cv]
    write_fn = memory.adaptive.write_lfu if settings.eviction == 'lfu' else memory.write
    return write_fn(b, query_key, values.reshape(k, hk * wk, -1), active,
                    frame.index, pin=has_ann)

  bank = jax.lax.cond(write, memorise, lambda b: b, bank)
  new_state = VideoState(bank=bank, active=active,
                         last_mem=jnp.where(write, frame.index, state.last_mem))

  probs = probs[:, pt:pt + h, pl:pl + w]                               # [K+1, H, W]
  if settings.out_size is not None and tuple(settings.out_size) != (h, w):
    probs = jnp.moveaxis(resize_bilinear(jnp.moveaxis(probs, 0, -1), settings.out_size), -1, 0)
  out = FrameOutput(mask=jnp.argmax(probs, axis=0).astype(jnp.uint8),
                    probs=probs if settings.return_probs else None)
  return new_state, out


def make_chunk_fn(model, settings, on_trace: Callable[[], Any] | None = None,
                  step: Callable[..., Any] | None = None):
  """A jitted ``(params, state, frames[T]) -> (state, outputs[T])`` over one chunk.

  ``step(model, params, settings, state, frame) -> (state, FrameOutput)`` is
  the model's per-frame core (default: STCN's ``frame_step``); the settings
  need ``out_size`` and ``return_probs``. Padding frames (``valid`` False)
  leave the state untouched. ``on_trace`` is called each time the scan body
  is traced (tests use it to count retraces).
  """
  step = step or frame_step

  def body(params, state, frame):
    if on_trace is not None:
      on_trace()
    def run(s):
      return step(model, params, settings, s, frame)
    def skip(s):
      k = frame.given.shape[0]
      h, w = settings.out_size or frame.image.shape[:2]
      probs = jnp.zeros((k + 1, h, w), jnp.float32) if settings.return_probs else None
      return s, FrameOutput(mask=jnp.zeros((h, w), jnp.uint8), probs=probs)
    return jax.lax.cond(frame.valid, run, skip, state)

  @functools.partial(jax.jit, donate_argnums=(1,))
  def run_chunk(params, state, frames):
    return jax.lax.scan(functools.partial(body, params), state, frames)

  return run_chunk


def memory_writes(num_frames: int, annotated: set[int], mem_every: int) -> int:
  """How many frames the schedule memorises (the unbounded official memory size)."""
  count, last = 0, None
  for t in range(num_frames):
    if t in annotated:
      count, last = count + 1, t
    elif last is not None and t - last >= mem_every and t != num_frames - 1:
      count, last = count + 1, t
  return count
