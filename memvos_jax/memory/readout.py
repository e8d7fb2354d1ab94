"""Memory read: STCN's L2 affinity, (top-k) masked softmax, weighted readout.

The affinity between every memory position and every query position is
computed once and shared by all objects. Objects that appeared later have
fewer valid memory slots; when the objects' slot validities differ, the
masked softmax is taken per object, else once for all. ``read_dense`` is
STM's read: per-object keys, dot-product affinity, a softmax over every
memory position, optionally over a second (temporary) bank as well.
"""

import functools
import math

import jax
import jax.numpy as jnp

from memvos_jax.memory.bank import MemoryBank


def l2_affinity(mem_keys, query_keys):
  """STCN affinity (2 k_m.k_q - |k_m|^2) / sqrt(Ck).

  mem_keys [M, Ck], query_keys [Q, Ck] -> [Q, M]. The |k_q|^2 term is constant
  per query and cancels in the softmax, exactly as in the official code.
  """
  ck = mem_keys.shape[-1]
  a_sq = jnp.sum(jnp.square(mem_keys.astype(jnp.float32)), axis=-1)  # [M]
  ab = jnp.einsum('qc,mc->qm', query_keys, mem_keys, precision=jax.lax.Precision.HIGHEST,
                  preferred_element_type=jnp.float32)          # [Q, M] float32
  return (2.0 * ab - a_sq[None, :]) / math.sqrt(ck)


def dot_affinity(mem_keys, query_keys):
  """STM affinity k_m.k_q / sqrt(Ck): [M, Ck], [Q, Ck] -> [Q, M]."""
  ck = mem_keys.shape[-1]
  return jnp.einsum('qc,mc->qm', query_keys, mem_keys, precision=jax.lax.Precision.HIGHEST,
                    preferred_element_type=jnp.float32) / math.sqrt(ck)


# Memory slots per block of the top-k read: a block with no valid slot is skipped.
BLOCK_SLOTS = 4


def _softmax(vals):
  """Softmax over the last axis of masked affinities (-inf: left out) -> weights."""
  finite = jnp.isfinite(vals)
  # The official top-k softmax exponentiates without shifting; shift only
  # where exp would overflow, so ordinary inputs round exactly as official.
  m = jnp.max(jnp.where(finite, vals, -1e30), axis=1, keepdims=True)
  m = jnp.where(jnp.abs(m) > 60.0, m, 0.0)
  e = jnp.where(finite, jnp.exp(vals - m), 0.0)
  return e / jnp.maximum(jnp.sum(e, axis=1, keepdims=True), 1e-30)


def _top_affinities(mem_keys, query_key, pos_mask, top_k: int, affinity, block: int):
  """The ``top_k`` largest masked affinities per query and their memory positions.

  mem_keys [M, Ck], query_key [Q, Ck], pos_mask [M] -> (values [Q, J], index
  [Q, J]), J = min(top_k, M); masked positions count as -inf. The memory is
  taken in blocks of ``block`` positions (whole slots): a block with no valid
  position is skipped, so the cost follows the memory written so far, as in
  the official code, whose memory grows, rather than the capacity. The top-k
  of each block, then the top-k of those candidates: the same values as one
  top-k over the whole memory (block order keeps ties on the lower position).
  """
  m, q = mem_keys.shape[0], query_key.shape[0]

  def top(keys, mask, offset, k):          # one block -> ([Q, k], [Q, k])
    aff = jnp.where(mask[None, :], affinity(keys, query_key), -jnp.inf)
    vals, idx = jax.lax.top_k(aff, k)
    return vals, idx + offset

  nb = m // block
  if nb <= 1:                              # one block: nothing to skip
    return top(mem_keys, pos_mask, 0, min(top_k, m))
  kb = min(top_k, block)
  absent = (jnp.full((q, kb), -jnp.inf, jnp.float32), jnp.zeros((q, kb), jnp.int32))

  def body(_, xs):
    keys, mask, offset = xs
    return None, jax.lax.cond(jnp.any(mask), lambda: top(keys, mask, offset, kb),
                              lambda: absent)

  split = lambda t: t[:nb * block].reshape(nb, block, *t.shape[1:])
  _, (vals, idx) = jax.lax.scan(body, None, (split(mem_keys), split(pos_mask),
                                             jnp.arange(nb, dtype=jnp.int32) * block))
  vals = jnp.moveaxis(vals, 0, 1).reshape(q, nb * kb)               # [Q, nb * kb]
  idx = jnp.moveaxis(idx, 0, 1).reshape(q, nb * kb)
  if m > nb * block:                       # a last, partial block
    tv, ti = top(mem_keys[nb * block:], pos_mask[nb * block:], nb * block,
                 min(top_k, m - nb * block))
    vals, idx = jnp.concatenate([vals, tv], 1), jnp.concatenate([idx, ti], 1)
  vals, pick = jax.lax.top_k(vals, min(top_k, m))
  return vals, jnp.take_along_axis(idx, pick, axis=1)


def _gather_read(w, idx, values, dense):
  """values [M, Cv] -> [Q, Cv] = sum_j w[q, j] values[idx[q, j]]."""
  if dense:
    return jnp.einsum('qm,mc->qc', w, values, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum('qj,qjc->qc', w, values[idx],
                    precision=jax.lax.Precision.HIGHEST)


def read(bank: MemoryBank, query_key, top_k: int | None = 20,
         affinity=l2_affinity, block_slots: int = BLOCK_SLOTS):
  """Read the bank for one query frame.

  Args:
    bank: the memory (C slots, K objects, N positions each).
    query_key: [Q, Ck] query keys (Q = h*w).
    top_k: keep the k largest affinities per query position (STCN), or None
      for a softmax over all memory positions (STM, training).
    block_slots: top-k reads take the memory in blocks of this many slots
      and skip blocks with no valid slot (``_top_affinities``).
  Returns:
    readout [K, Q, Cv] and slot_weight [C] (total attention each slot got,
    summed over query positions and objects: the usage signal for LFU).
  """
  k, c, n, cv = bank.values.shape
  mkeys = bank.keys.reshape(c * n, -1)                          # [M, Ck]
  values = bank.values.reshape(k, c * n, cv)                    # [K, M, Cv]
  pos_valid = jnp.repeat(bank.valid, n, axis=0)                 # [M, K]
  dense = top_k is None
  if dense:                                                     # [Q, M], shared by the objects
    aff = affinity(mkeys, query_key)

  def weights(mask):                                            # -> ([Q, J], [Q, J])
    if dense:
      idx = jnp.broadcast_to(jnp.arange(c * n), (query_key.shape[0], c * n))
      return _softmax(jnp.where(mask[None, :], aff, -jnp.inf)), idx
    vals, idx = _top_affinities(mkeys, query_key, mask, top_k, affinity, block_slots * n)
    return _softmax(vals), idx

  union = jnp.any(pos_valid, axis=1)                            # [M]
  active = jnp.any(bank.valid, axis=0)                          # [K]
  shared = jnp.all(jnp.where(active[None, :], pos_valid == union[:, None], True))

  def one_mask(_):
    w, idx = weights(union)
    out = jax.vmap(lambda v: _gather_read(w, idx, v, dense))(values)
    return out, w, jnp.broadcast_to(idx, (k,) + idx.shape), jnp.broadcast_to(w, (k,) + w.shape)

  def per_object(_):
    def f(args):
      mask, v = args
      w, idx = weights(mask)
      return _gather_read(w, idx, v, dense), w, idx
    out, w, idx = jax.lax.map(f, (pos_valid.T, values))
    return out, w[0], idx, w

  readout, _, idx_k, w_k = jax.lax.cond(shared, one_mask, per_object, None)
  w_k = jnp.where(active[:, None, None], w_k, 0.0)
  slot_weight = jax.ops.segment_sum(w_k.reshape(-1), (idx_k // n).reshape(-1),
                                    num_segments=c)
  return readout, slot_weight


def _object_parts(bank: MemoryBank, obj):
  """Object ``obj``'s memory in ``bank``: keys [M, Ck], values [M, Cv], mask [M]."""
  k, c, n, cv = bank.values.shape
  keys = bank.keys[obj] if bank.per_object_keys else bank.keys
  return (keys.reshape(c * n, -1), bank.values[obj].reshape(c * n, cv),
          jnp.repeat(bank.valid[:, obj], n))


def read_dense(bank: MemoryBank, query_key, extra: MemoryBank | None = None,
               affinity=dot_affinity):
  """STM read: per object, a softmax over all of its valid memory positions.

  The affinity is taken per object (a per-object-key bank gives each object
  its own keys) and the softmax runs over the positions of ``bank`` and of
  ``extra`` together (e.g. a one-slot bank holding STM's temporary
  previous-frame memory), without concatenating them. Objects with no valid
  position read zeros.

  Args:
    bank: C slots, K objects; keys [C, N, Ck] or [K, C, N, Ck].
    query_key: [Q, Ck].
    extra: optional second bank with the same K, N, Ck, Cv.
  Returns:
    readout [K, Q, Cv] and slot_weight [C] (attention each slot of ``bank``
    got, summed over query positions and objects).
  """
  banks = [bank] if extra is None else [bank, extra]
  k, c, n, _ = bank.values.shape

  def one(obj):
    parts = [_object_parts(b, obj) for b in banks]
    affs = [jnp.where(mask[None, :], affinity(keys, query_key), -jnp.inf)
            for keys, _, mask in parts]                                   # [Q, M_i]
    m = functools.reduce(jnp.maximum, [jnp.max(a, axis=1, keepdims=True) for a in affs])
    m = jnp.where(jnp.isfinite(m), m, 0.0)                                # [Q, 1]
    es = [jnp.where(mask[None, :], jnp.exp(a - m), 0.0)
          for a, (_, _, mask) in zip(affs, parts)]
    z = jnp.maximum(sum(jnp.sum(e, axis=1, keepdims=True) for e in es), 1e-30)
    ws = [e / z for e in es]
    out = sum(jnp.einsum('qm,mc->qc', w, v, precision=jax.lax.Precision.HIGHEST)
              for w, (_, v, _) in zip(ws, parts))                         # [Q, Cv]
    return out, jnp.sum(ws[0].reshape(-1, c, n), axis=(0, 2))             # [C]

  readout, slot_weight = jax.lax.map(one, jnp.arange(k))
  return readout, jnp.sum(slot_weight, axis=0)
