"""STCN's per-frame inference core (scanned by ``core.make_chunk_fn``).

The network is separate from the inference core: this module owns the
memory schedule and the object bookkeeping; the model is used only through
``encode_key`` / ``encode_value`` / ``decode``.

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

import flax.struct
import jax
import jax.numpy as jnp

from memvos_jax import memory
from memvos_jax.inference.core import (FrameInput, ScanSettings, frame_output,
                                       merge_annotation, pad_amounts, positions,
                                       prepare_frame)
from memvos_jax.nn.aggregate import aggregate


@dataclasses.dataclass(frozen=True)
class InferenceSettings(ScanSettings):
  """Static settings of one compiled STCN program."""
  mem_every: int = 5
  top_k: int | None = 20
  # Which unpinned slot a full bank overwrites: 'fifo' the oldest, 'lfu' the one
  # with the least read weight per frame of age (AFB-URR's LFU, memory.adaptive).
  eviction: str = 'fifo'

  def __post_init__(self):
    super().__post_init__()
    if self.eviction not in ('fifo', 'lfu'):
      raise ValueError(f"eviction must be 'fifo' or 'lfu', not {self.eviction!r}")


@flax.struct.dataclass
class VideoState:
  """The scan carry: memory plus object bookkeeping."""
  bank: memory.MemoryBank
  active: jax.Array       # [K] bool: objects introduced so far
  last_mem: jax.Array     # [] int32: frame index of the last memory write


def init_state(settings: InferenceSettings, num_objects: int, size, key_dim: int,
               value_dim: int) -> VideoState:
  """Empty memory for a clip of frame size ``size`` = (H, W)."""
  n = positions(size, settings.stride)
  bank = memory.init(settings.capacity, num_objects, n, key_dim, value_dim,
                     dtype=jnp.dtype(settings.dtype))
  return VideoState(bank=bank, active=jnp.zeros((num_objects,), bool),
                    last_mem=jnp.asarray(-(2 ** 30), jnp.int32))


def frame_step(model, params, settings: InferenceSettings, state: VideoState,
               frame: FrameInput):
  """Segment one frame and update the memory. Pure; traced once per clip shape."""
  apply = functools.partial(model.apply, params)
  k = state.active.shape[0]
  h, w = frame.image.shape[:2]
  pad = pad_amounts((h, w), settings.stride)
  image = prepare_frame(frame.image, settings.stride, state.bank.values.dtype)

  k16, f16_thin, f16, f8, f4 = apply(image[None], method='encode_key')
  hk, wk, ck = k16.shape[1:]
  query_key = k16[0].reshape(hk * wk, ck)                              # [Q, Ck]

  # Read memory and decode every object; skipped while no object is active
  # (frames before the first annotation, as the official loop never visits them).
  def predict(bank):
    readout, slot_weight = memory.read(bank, query_key, settings.top_k)
    readout = readout.reshape(k, hk, wk, -1).astype(image.dtype)      # [K, h, w, Cv]
    logits = apply(readout, f16_thin[0], f8, f4, method='decode')      # [K, Hp, Wp]
    probs = aggregate(jax.nn.sigmoid(logits.astype(jnp.float32)), state.active)  # [K+1, Hp, Wp]
    return probs, bank.replace(usage=bank.usage + slot_weight)

  def nothing(bank):
    hp, wp = image.shape[:2]
    empty = jnp.zeros((k, hp, wp), jnp.float32)
    return aggregate(empty, state.active), bank

  probs, bank = jax.lax.cond(jnp.any(state.active), predict, nothing, state.bank)

  # An annotation overrides the prediction for the objects it gives.
  probs, active, has_ann = merge_annotation(probs, frame, state.active, pad)

  # Memory schedule (official: every mem_every frames, never the last frame).
  due = (frame.index - state.last_mem >= settings.mem_every) & ~frame.is_last
  write = (has_ann | due) & jnp.any(active)

  def memorise(b):
    values = apply(image, f16[0], probs[1:].astype(image.dtype),
                   method='encode_value')                              # [K, h, w, Cv]
    write_fn = memory.adaptive.write_lfu if settings.eviction == 'lfu' else memory.write
    return write_fn(b, query_key, values.reshape(k, hk * wk, -1), active,
                    frame.index, pin=has_ann)

  bank = jax.lax.cond(write, memorise, lambda b: b, bank)
  new_state = VideoState(bank=bank, active=active,
                         last_mem=jnp.where(write, frame.index, state.last_mem))

  return new_state, frame_output(probs, pad, (h, w), settings)


def memory_writes(num_frames: int, annotated: set[int], mem_every: int) -> int:
  """How many frames the schedule memorises (the unbounded official memory size)."""
  count, last = 0, None
  for t in range(num_frames):
    if t in annotated:
      count, last = count + 1, t
    elif last is not None and t - last >= mem_every and t != num_frames - 1:
      count, last = count + 1, t
  return count
