"""AFB-URR video inference: the per-frame step scanned by ``core.make_chunk_fn``.

Semantics of the official evaluation loop (xmlyqing00/AFB-URR ``eval.py``,
DAVIS mode; objects appearing later as in its YouTube-VOS mode):
  * classes are the background and the K objects; every class has its own
    adaptive bank (``memory.adaptive``) and its own decoder pass;
  * frames are scaled to [0, 1], zero-padded (centred) to a multiple of 16,
    then ImageNet-normalised (padding is black, as in the official encoders);
  * frame t: read every class's bank (usage counted), decode, logit of the
    clamped fg probability = score; objects not introduced yet score -1000;
    probabilities = softmax over classes, mask = argmax;
  * then, except on the last frame: memorise the frame with those soft masks
    (zero in the padding) and ``update`` the banks (merge / LFU remove /
    append) with frame index t;
  * a frame annotating objects (the first one, or a later one introducing
    objects): its objects take +1000 inside their mask, every other class
    -1000 there, and the whole bank is re-initialised from it (``init_bank``).
Shapes are static: O = K+1 classes of S slots (``memory.adaptive.num_slots``).
"""

import dataclasses
import functools

import flax.struct
import jax
import jax.numpy as jnp

from memvos_jax.inference.core import (FrameInput, ScanSettings, frame_output, pad_amounts,
                                       positions, prepare_frame)
from memvos_jax.memory import adaptive

FORCE = 1000.0   # official score override for given / absent objects


@dataclasses.dataclass(frozen=True)
class AFBSettings(ScanSettings):
  """Static settings of one compiled AFB-URR program.

  ``capacity``: memory frames the static slots must hold per class: slots =
  min(class budget, capacity x positions per frame), at least one frame.
  """
  budget: int = 300_000          # features over all classes (official --budget)
  update_rate: float = 0.1       # merge weight (official DAVIS 0.1, YouTube-VOS 0.05)
  thres_close: float = 0.95      # cosine above which a new feature is merged
  thres_valid: float = 1e-3      # attention weight that counts as a use (LFU)


@flax.struct.dataclass
class AFBState:
  """The scan carry: the per-class adaptive banks and the objects introduced so far."""
  bank: adaptive.AdaptiveBank
  active: jax.Array       # [K] bool


def init_state(settings: AFBSettings, num_objects: int, size, key_dim: int = 128,
               value_dim: int = 512) -> AFBState:
  """Empty banks for K = ``num_objects`` objects and frames of ``size`` = (H, W)."""
  o = num_objects + 1
  slots = adaptive.num_slots(settings.budget, o, positions(size, settings.stride),
                             settings.capacity)
  return AFBState(bank=adaptive.init(o, slots, key_dim, value_dim),
                  active=jnp.zeros((num_objects,), bool))


def frame_step(model, params, settings: AFBSettings, state: AFBState, frame: FrameInput):
  """Segment one frame and update the banks. Pure; traced once per clip shape."""
  apply = functools.partial(model.apply, params)
  k = state.active.shape[0]
  o = k + 1
  h, w = frame.image.shape[:2]
  pt, pb, pl, pr = pad_amounts((h, w), settings.stride)
  # [Hp, Wp, 3] black border; the network runs in settings.dtype, the banks stay float32
  # (the 0.95 cosine merge rule is sensitive to rounding).
  image = prepare_frame(frame.image, settings.stride, settings.dtype, pad_first=True)
  hp, wp = image.shape[:2]
  inside = jnp.pad(jnp.ones((h, w), bool), ((pt, pb), (pl, pr)))   # [Hp, Wp]
  started = jnp.any(state.active)

  def predict(bank):
    k4, v4, r3, r2, r1 = apply(image[None], method='encode_query')
    hk, wk = k4.shape[1:3]
    readout, bank = adaptive.read(bank, k4[0].reshape(hk * wk, -1), settings.thres_valid)
    fg = apply(readout.reshape(o, hk, wk, -1).astype(image.dtype), v4[0], r3, r2, r1,
               method='decode').astype(jnp.float32)
    fg = jnp.clip(fg, 1e-7, 1.0 - 1e-7)
    return jnp.log(fg / (1.0 - fg)), bank                           # [O, Hp, Wp] scores

  def nothing(bank):
    return jnp.zeros((o, hp, wp), jnp.float32), bank

  scores, bank = jax.lax.cond(started, predict, nothing, state.bank)

  # Objects not introduced yet: -1000. Given objects: +1000 inside their mask,
  # -1000 outside; every other class -1000 inside a given mask.
  gt_ids = jnp.pad(frame.annotation.astype(jnp.int32), ((pt, pb), (pl, pr)))
  gt = (gt_ids[None] == jnp.arange(1, k + 1)[:, None, None]) & frame.given[:, None, None]
  region = jnp.any(gt, axis=0)
  obj = jnp.where(state.active[:, None, None], scores[1:], -FORCE)
  obj = jnp.where(region[None], -FORCE, obj)
  obj = jnp.where(frame.given[:, None, None], jnp.where(gt, FORCE, -FORCE), obj)
  bg = jnp.where(region, -FORCE, scores[0])
  scores = jnp.concatenate([bg[None], obj], axis=0)
  probs = jax.nn.softmax(scores, axis=0)                            # [O, Hp, Wp]

  has_ann = jnp.any(frame.given)
  active = state.active | frame.given
  write = jnp.any(active) & ~frame.is_last

  def memorise(b):
    masks = jnp.where(inside[None], probs, 0.0)                      # padding: 0 in every class
    keys, values = apply(image, masks.astype(image.dtype), method='encode_memory')  # [O, h, w, C]
    keys = keys.reshape(o, -1, keys.shape[-1]).astype(jnp.float32)
    values = values.reshape(o, -1, values.shape[-1]).astype(jnp.float32)
    limit = adaptive.class_limit(settings.budget, o, b.slots)
    return jax.lax.cond(
        has_ann,
        lambda b: adaptive.reset(b, keys, values, frame.index),
        lambda b: adaptive.update(b, keys, values, frame.index, limit=limit,
                                  update_rate=settings.update_rate,
                                  thres_close=settings.thres_close), b)

  bank = jax.lax.cond(write, memorise, lambda b: b, bank)
  new_state = AFBState(bank=bank, active=active)

  return new_state, frame_output(probs, (pt, pb, pl, pr), (h, w), settings)


def memory_frames(num_frames: int, annotated, options=None) -> int:
  """Frames the official loop memorises after the first annotation (never the last)."""
  first = min(annotated) if annotated else 0
  return max(1, num_frames - 1 - first)


def slots_for(budget: int, num_objects: int, size, memory: int, stride: int = 16) -> int:
  """Static slots per class for a clip (what ``init_state`` allocates)."""
  return adaptive.num_slots(budget, num_objects + 1, positions(size, stride), memory)

