"""Adaptive feature bank (AFB-URR): per-class position slots, merging and LFU removal.

Static-shape version of the official ``FeatureBank`` (xmlyqing00/AFB-URR,
``model/FeatureBank.py``). Every class (background included: it is a class
with its own bank) owns ``S`` slots; a slot holds one memory *position* (a
key and a value vector), the frame it was written (``info[:, 0]``) and a
log-usage counter (``info[:, 1]``). The valid slots of a class are always the
prefix ``0 .. count-1`` in the official order (removal compacts with a
cumulative sum, appends go after the last valid slot), so reads and argmax
ties see the entries in the same order as the official list.

  * ``read`` (the official ``Matcher`` with ``update_bank=True``): softmax
    over the class's entries of k.q/sqrt(Ck); every entry's usage grows by
    log(1 + number of query positions whose weight exceeds ``thres_valid``).
  * ``update`` (``FeatureBank.update``): each new key picks its most similar
    entry (cosine); above ``thres_close`` it is merged into it (scatter-mean of
    the normalised new keys/values, weighted by ``update_rate``, the entry's
    magnitude kept); the rest are appended, after an LFU ``remove`` when
    ``count + appended`` would exceed the class budget.
  * ``remove``: LFU = usage / (t - frame); keep LFU > int(min LFU) + 1,
    raising the threshold the same way until the request fits.

Frame-slot banks (``memory.MemoryBank``) get the LFU policy through
``lfu_slot`` / ``write_lfu`` (eviction of the least used frame per age).
"""

import math

import flax.struct
import jax
import jax.numpy as jnp

from memvos_jax.memory.bank import MemoryBank, write
from memvos_jax.memory.readout import dot_affinity

_EPS = 1e-12          # torch F.normalize
USAGE_MAX = 1e5       # official clamp of info[:, 1] ("prevent inf")
# Cosine margin counted as float32 noise by ``AdaptiveBank.near``: the keys
# come out of deep conv stacks whose float32 results differ by ~1e-5 relative
# between backends (oneDNN vs XLA summation orders).
NEAR = 1e-4


@flax.struct.dataclass
class AdaptiveBank:
  keys: jax.Array          # [O, S, Ck]  O classes (bg first), S slots per class
  values: jax.Array        # [O, S, Cv]
  count: jax.Array         # [O] int32: valid slots are 0 .. count-1
  frame: jax.Array         # [O, S] int32: frame the entry was written (info[:, 0])
  usage: jax.Array         # [O, S] float32: accumulated log-usage (info[:, 1])
  # Accounting of the last update (per class), for tests and diagnostics.
  merged: jax.Array        # [O] int32: new keys merged into existing entries
  merge_targets: jax.Array  # [O] int32: distinct entries merged into
  removed: jax.Array       # [O] int32: entries removed by LFU
  remove_calls: jax.Array  # [O] int32: LFU removals so far (cumulative)
  # Decisions of the last update within float32 noise (``NEAR``), which another
  # summation order may take otherwise: new keys whose best cosine is that
  # close to ``thres_close`` (merge or append), and merged keys whose two best
  # targets are that close (which entry they merge into).
  near: jax.Array          # [O] int32
  ties: jax.Array          # [O] int32

  @property
  def slots(self) -> int:
    return self.keys.shape[1]

  @property
  def valid(self) -> jax.Array:  # [O, S] bool
    return jnp.arange(self.slots)[None, :] < self.count[:, None]


def class_budget(budget: int, num_classes: int) -> float:
  """Official per-class budget: budget // obj_n, times 0.8 when obj_n == 2 (a float)."""
  b = budget // num_classes
  return 0.8 * b if num_classes == 2 else b


def class_limit(budget: int, num_classes: int, slots: int) -> int:
  """Largest integer entry count the official ``class_budget < n`` rule allows, capped by S."""
  return min(math.floor(class_budget(budget, num_classes)), slots)


def num_slots(budget: int, num_classes: int, positions: int, memory_frames: int) -> int:
  """Static slots per class: what the budget allows, or what the clip can ever hold.

  ``positions`` = h*w per frame, ``memory_frames`` = frames the loop memorises.
  At least one frame's positions (the initial bank is never cut).
  """
  limit = math.floor(class_budget(budget, num_classes))
  return max(positions, min(limit, positions * max(memory_frames, 1)))


def init(num_classes: int, slots: int, key_dim: int, value_dim: int,
         dtype=jnp.float32) -> AdaptiveBank:
  """An empty bank (no class has entries)."""
  o, s = num_classes, slots
  zi = lambda: jnp.zeros((o,), jnp.int32)   # distinct buffers (the scan donates the state)
  return AdaptiveBank(
      keys=jnp.zeros((o, s, key_dim), dtype), values=jnp.zeros((o, s, value_dim), dtype),
      count=zi(), frame=jnp.full((o, s), -1, jnp.int32), usage=jnp.zeros((o, s), jnp.float32),
      merged=zi(), merge_targets=zi(), removed=zi(), remove_calls=zi(), near=zi(),
      ties=zi())


def reset(bank: AdaptiveBank, keys: jax.Array, values: jax.Array, frame) -> AdaptiveBank:
  """Official ``init_bank``: every class holds exactly this frame's positions.

  keys [O, N, Ck], values [O, N, Cv] with N <= S.
  """
  n = keys.shape[1]
  s = bank.slots
  pad = lambda a: jnp.pad(a.astype(bank.keys.dtype), ((0, 0), (0, s - n), (0, 0)))
  o = keys.shape[0]
  zi = jnp.zeros((o,), jnp.int32)
  first = jnp.arange(s)[None, :] < n
  return bank.replace(
      keys=pad(keys), values=pad(values), count=jnp.full((o,), n, jnp.int32),
      frame=jnp.broadcast_to(jnp.where(first, jnp.asarray(frame, jnp.int32), -1), (o, s)),
      usage=jnp.zeros_like(bank.usage), merged=zi, merge_targets=zi, removed=zi, near=zi,
      ties=zi)


def read(bank: AdaptiveBank, query_key: jax.Array, thres_valid: float = 1e-3,
         count_usage: bool = True):
  """Official ``Matcher``: per class, softmax over its entries and the weighted values.

  Args:
    query_key: [Q, Ck].
  Returns:
    readout [O, Q, Cv] and the bank with usage += log(1 + #{q: weight > thres_valid}).
  """
  def one(args):
    keys, values, count = args
    valid = jnp.arange(keys.shape[0]) < count                      # [S]
    aff = jnp.where(valid[None, :], dot_affinity(keys, query_key), -jnp.inf)  # [Q, S]
    p = jax.nn.softmax(aff, axis=1)
    p = jnp.where(count > 0, p, 0.0)
    mem = jnp.einsum('qs,sc->qc', p, values, precision=jax.lax.Precision.HIGHEST)
    hits = jnp.sum(p > thres_valid, axis=0).astype(jnp.float32)     # [S]
    return mem, jnp.where(valid, jnp.log(hits + 1.0), 0.0)

  readout, inc = jax.lax.map(one, (bank.keys, bank.values, bank.count))
  if count_usage:
    bank = bank.replace(usage=bank.usage + inc)
  return readout, bank


def _normalize(x):
  """torch ``F.normalize(x, dim=feature)`` and the norms: [M, C] -> ([M, C], [M])."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1))
  return x / jnp.maximum(norm, _EPS)[:, None], norm


def _merge(entries, count, new, target, merge, rate):
  """Blend the scatter-mean of the merged normalised ``new`` rows into their targets."""
  s = entries.shape[0]
  normed, mag = _normalize(entries)
  normed_new, _ = _normalize(new)
  total = jax.ops.segment_sum(jnp.where(merge[:, None], normed_new, 0.0), target,
                              num_segments=s)                       # [S, C]
  hits = jax.ops.segment_sum(merge.astype(entries.dtype), target, num_segments=s)  # [S]
  mean = total / jnp.maximum(hits, 1.0)[:, None]
  blended = mag[:, None] * ((1.0 - rate) * normed + rate * mean)
  hit = (hits > 0) & (jnp.arange(s) < count)
  return jnp.where(hit[:, None], blended, entries), hit


def lfu_remove_mask(usage, frame, valid, now, request, limit):
  """Official ``remove``: which entries survive, and whether the request then fits.

  LFU = usage / (now - frame); keep LFU > int(min LFU) + 1; while
  ``kept + request > limit``, raise the threshold to int(min kept LFU) + 1.
  (The official loop fails on an emptied bank; here it stops there.)
  Returns keep [S] bool.
  """
  lfu = usage / (jnp.asarray(now, jnp.float32) - frame.astype(jnp.float32))
  lfu = jnp.where(valid, lfu, jnp.inf)

  def cut(keep):
    thres = jnp.floor(jnp.min(jnp.where(keep, lfu, jnp.inf))) + 1.0
    return keep & (lfu > thres)

  def more(keep):
    n = jnp.sum(keep)
    return (n + request > limit) & (n > 0)

  return jax.lax.while_loop(more, cut, cut(valid))


def _compact(keep, *arrays):
  """Move the kept rows to the front, in order (cumulative-sum positions)."""
  s = keep.shape[0]
  pos = jnp.where(keep, jnp.cumsum(keep) - 1, s)
  return tuple(jnp.zeros_like(a).at[pos].set(a, mode='drop') for a in arrays)


def _update_class(args, *, now, limit, update_rate, thres_close):
  keys, values, count, frame, usage, calls, new_k, new_v = args
  s = keys.shape[0]
  valid = jnp.arange(s) < count
  normed_keys, _ = _normalize(keys)
  normed_new, _ = _normalize(new_k)
  corr = jnp.einsum('sc,mc->ms', normed_keys, normed_new,
                    precision=jax.lax.Precision.HIGHEST)           # [M, S]
  corr = jnp.where(valid[None, :], corr, -jnp.inf)
  target = jnp.argmax(corr, axis=1)                                 # [M] first max
  best = jnp.max(corr, axis=1)
  merge = best > thres_close                                        # [M]
  second = jnp.max(jnp.where(jnp.arange(s)[None, :] == target[:, None], -jnp.inf, corr), axis=1)
  gap = best - second
  near = jnp.abs(best - thres_close) < NEAR
  ties = merge & (gap > 0) & (gap < NEAR)

  keys, hit = _merge(keys, count, new_k, target, merge, update_rate)
  values, _ = _merge(values, count, new_v, target, merge, update_rate)

  append = ~merge
  request = jnp.sum(append).astype(jnp.int32)

  def remove(c):
    keys, values, frame, usage, count = c
    keep = lfu_remove_mask(usage, frame, valid, now, request, limit)
    keys, values, frame, usage = _compact(keep, keys, values, frame, usage)
    return keys, values, frame, usage, jnp.sum(keep).astype(jnp.int32)

  state = (keys, values, frame, usage, count)
  need = count + request > limit
  keys, values, frame, usage, kept = jax.lax.cond(need, remove, lambda c: c, state)
  pos = jnp.where(append, kept + jnp.cumsum(append) - 1, s)          # [M]
  keys = keys.at[pos].set(new_k.astype(keys.dtype), mode='drop')
  values = values.at[pos].set(new_v.astype(values.dtype), mode='drop')
  frame = frame.at[pos].set(jnp.asarray(now, jnp.int32), mode='drop')
  usage = usage.at[pos].set(0.0, mode='drop')
  new_count = jnp.minimum(kept + request, s)
  usage = jnp.where(jnp.arange(s) < new_count, jnp.clip(usage, 0.0, USAGE_MAX), 0.0)
  frame = jnp.where(jnp.arange(s) < new_count, frame, -1)
  stats = (jnp.sum(merge).astype(jnp.int32), jnp.sum(hit).astype(jnp.int32),
           count - kept, calls + need.astype(jnp.int32), jnp.sum(near).astype(jnp.int32),
           jnp.sum(ties).astype(jnp.int32))
  return (keys, values, new_count, frame, usage) + stats


def update(bank: AdaptiveBank, keys: jax.Array, values: jax.Array, frame, *,
           limit: int, update_rate: float = 0.1, thres_close: float = 0.95) -> AdaptiveBank:
  """Official ``FeatureBank.update`` for every class (one class at a time).

  Args:
    keys: [O, M, Ck] new keys (one frame's positions per class); values [O, M, Cv].
    frame: the frame index t (ages for LFU are t - frame written).
    limit: entries a class may hold (``class_limit``).
  """
  fn = lambda a: _update_class(a, now=frame, limit=limit, update_rate=update_rate,
                               thres_close=thres_close)
  (k, v, count, fr, usage, merged, targets, removed, calls, near, ties) = jax.lax.map(
      fn, (bank.keys, bank.values, bank.count, bank.frame, bank.usage,
           bank.remove_calls, keys.astype(bank.keys.dtype), values.astype(bank.values.dtype)))
  return bank.replace(keys=k, values=v, count=count, frame=fr, usage=usage, merged=merged,
                      merge_targets=targets, removed=removed, remove_calls=calls, near=near,
                      ties=ties)


# ---------------------------------------------------------------------------
# LFU eviction for frame-slot banks (``memory.MemoryBank``, e.g. STCN).


def lfu_slot(bank: MemoryBank, now) -> jax.Array:
  """LFU slot choice: first free slot, else the unpinned slot with the least usage per age.

  usage/(now - frame) as the official AFB ``remove``; if every slot is pinned,
  the least used of all. Ties go to the oldest (lowest index among equals).
  """
  used = bank.slot_used
  age = jnp.maximum(jnp.asarray(now, jnp.float32) - bank.frame.astype(jnp.float32), 1.0)
  lfu = bank.usage / age
  unpinned = used & ~bank.pinned
  score = jnp.where(jnp.any(unpinned), jnp.where(unpinned, lfu, jnp.inf), lfu)
  return jnp.where(jnp.all(used), jnp.argmin(score), jnp.argmin(used)).astype(jnp.int32)


def write_lfu(bank: MemoryBank, key: jax.Array, values: jax.Array, obj_valid: jax.Array,
              frame, pin=False, enable=True) -> MemoryBank:
  """``memory.write`` with LFU eviction instead of FIFO (same arguments)."""
  return write(bank, key, values, obj_valid, frame, pin, enable, select=lfu_slot)
