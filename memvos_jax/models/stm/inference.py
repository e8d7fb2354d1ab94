"""STM's per-frame inference core (scanned by ``core.make_chunk_fn``).

Semantics follow the official DAVIS evaluation (seoungwugoh/STM
``eval_DAVIS.py`` ``Run_video`` and ``model.py``):
  * frames are zero-padded (centred) to a multiple of 16 in [0, 1] and then
    ImageNet-normalised (the official encoders normalise after padding, so
    the border is -mean/std, unlike STCN's zeros);
  * frame t reads the memory frames {0, mem_every, 2*mem_every, ...} before
    t-1 plus frame t-1 as a temporary entry; each object reads its own keys
    (the memory encoder sees the object's mask), dot product / sqrt(Ck),
    softmax over every memory position; the decoder's two-way softmax gives
    each object's probability, soft aggregation the frame's distribution;
  * a frame is memorised with its soft probabilities (the annotation where
    given), zero in the padding. Frames whose index is a multiple of ``mem_every`` and annotated
    frames are kept (annotated ones pinned); any other frame is held only as
    the temporary entry until the next frame replaces it;
  * objects first annotated on a later frame (YouTube-VOS style) take their
    given mask there (other objects' probabilities are zeroed inside it),
    are active from then on, and have no value in earlier memory frames.
A bounded memory (``capacity``) evicts the oldest non-pinned frame (FIFO).
"""

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp

from memvos_jax.inference.core import (FrameInput, ScanSettings, frame_output,
                                       merge_annotation, pad_amounts, positions,
                                       prepare_frame)
from memvos_jax.memory import bank as membank
from memvos_jax.memory.readout import read_dense
from memvos_jax.nn.aggregate import aggregate


@dataclasses.dataclass(frozen=True)
class STMSettings(ScanSettings):
  """Static settings of one compiled STM program."""
  mem_every: int = 5


@flax.struct.dataclass
class STMState:
  """The scan carry: kept memory, the temporary previous frame, active objects."""
  bank: membank.MemoryBank   # kept frames: per-object keys [K, C, N, Ck]
  temp: membank.MemoryBank   # one slot: the previous frame unless it was kept
  active: jax.Array          # [K] bool: objects introduced so far


def init_state(settings: STMSettings, num_objects: int, size, key_dim: int = 128,
               value_dim: int = 512) -> STMState:
  """Empty memory for a clip of frame size ``size`` = (H, W)."""
  n = positions(size, settings.stride)
  new = functools.partial(membank.init, num_objects=num_objects, num_positions=n,
                          key_dim=key_dim, value_dim=value_dim, per_object_keys=True,
                          dtype=jnp.dtype(settings.dtype))
  return STMState(bank=new(settings.capacity), temp=new(1),
                  active=jnp.zeros((num_objects,), bool))


def frame_step(model, params, settings: STMSettings, state: STMState, frame: FrameInput):
  """Segment one frame and update the memory. Pure; traced once per clip shape."""
  apply = functools.partial(model.apply, params)
  k = state.active.shape[0]
  h, w = frame.image.shape[:2]
  pad = pad_amounts((h, w), settings.stride)
  image = prepare_frame(frame.image, settings.stride, settings.dtype, pad_first=True)  # [Hp, Wp, 3]

  qk, qv, r3, r2 = apply(image[None], method='encode_query')
  hk, wk, ck = qk.shape[1:]
  query_key = qk[0].reshape(hk * wk, ck)                               # [Q, Ck]

  # Read memory and decode every object; skipped while no object is active.
  def predict(bank):
    readout, slot_weight = read_dense(bank, query_key, extra=state.temp)
    readout = readout.reshape(k, hk, wk, -1).astype(image.dtype)       # [K, h, w, Cv]
    logits = apply(readout, qv[0], r3, r2, method='decode')            # [K, Hp, Wp, 2]
    fg = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[..., 1]   # [K, Hp, Wp]
    return aggregate(fg, state.active), bank.replace(
        usage=bank.usage + slot_weight.astype(bank.usage.dtype))

  def nothing(bank):
    empty = jnp.zeros((k,) + image.shape[:2], jnp.float32)
    return aggregate(empty, state.active), bank

  probs, bank = jax.lax.cond(jnp.any(state.active), predict, nothing, state.bank)
  probs, active, has_ann = merge_annotation(probs, frame, state.active, pad)

  # Memorise this frame: kept (every mem_every-th frame, annotated frames
  # pinned) or as the temporary entry for the next frame. The last frame of
  # a video is never read back, so it is not encoded.
  kept = has_ann | (frame.index % settings.mem_every == 0)
  encode = ~frame.is_last & jnp.any(active)

  # Teacher forcing (tests): memorise the given probabilities instead.
  remembered = probs if frame.teacher is None else jnp.pad(
      frame.teacher.astype(probs.dtype), ((0, 0), (pad[0], pad[1]), (pad[2], pad[3])))

  def memorise(carry):
    bank, _ = carry
    # The official memorises the cropped probabilities, zero-padded again.
    inside = jnp.pad(jnp.ones((h, w), probs.dtype), ((pad[0], pad[1]), (pad[2], pad[3])))
    keys, values = apply(image, (remembered[1:] * inside).astype(image.dtype),
                         method='encode_memory')                       # [K, h, w, C*]
    keys, values = keys.reshape(k, hk * wk, -1), values.reshape(k, hk * wk, -1)
    bank = membank.write(bank, keys, values, active, frame.index, pin=has_ann, enable=kept)
    temp = state.temp.replace(keys=keys[:, None], values=values[:, None],
                              valid=(active & ~kept)[None],
                              frame=jnp.where(kept, -1, frame.index)[None])
    return bank, temp

  def clear(carry):
    bank, temp = carry
    return bank, temp.replace(valid=jnp.zeros_like(temp.valid), frame=jnp.full_like(temp.frame, -1))

  bank, temp = jax.lax.cond(encode, memorise, clear, (bank, state.temp))
  new_state = STMState(bank=bank, temp=temp, active=active)

  return new_state, frame_output(probs, pad, (h, w), settings)


def memory_writes(num_frames: int, annotated: set[int], mem_every: int) -> int:
  """Frames the official (unbounded) memory keeps: annotated or index % mem_every == 0
  from the first annotation on, never the last frame."""
  if not annotated:
    return 0
  first = min(annotated)
  return sum(1 for t in range(first, num_frames - 1) if t in annotated or t % mem_every == 0)
