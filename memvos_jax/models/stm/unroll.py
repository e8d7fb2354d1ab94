"""STM unrolled over a training clip (the paper's training: every earlier frame in memory).

Frame 0 is memorised from its ground truth: per object, the memory encoder
sees (frame, object mask, other objects' mask), as the official ``memorize``.
Frame t (1 <= t < T) is the query: it reads the memory of EVERY earlier frame
0..t-1 (per-object keys, dot-product affinity / sqrt(Ck), a softmax over all
of an object's memory positions: the paper's space-time memory read, and
``memory.readout.read_dense`` at inference), its readout and query value are
decoded to per-object two-way logits, and the objects' foreground
probabilities are soft-aggregated. Except for the last frame, it is then
memorised from its predicted soft probabilities (the paper feeds the
network's own probability maps, not thresholded, back into memory). For
T = 3: frame 1 reads frame 0, frame 2 reads frames 0 and 1.

Objects are a fixed number K of slots with a validity mask (``valid``): an
invalid object has an empty mask in memory, probability 0 in the aggregation
(its aggregate logit is -1e4) and no part in the loss (``loss.clip_loss``).
The memory is one slot per earlier frame (T-1 slots, masked until written),
so the clip is a ``jax.lax.scan`` with a static carry, or (``use_scan=False``)
the same step body in a Python loop.
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.memory.readout import dot_affinity
from memvos_jax.nn.aggregate import aggregate_logits


def fg_probability(fg_logits):
  """Decoder logits [..., 2] -> each object's foreground probability (official ``Segment``)."""
  return jax.nn.softmax(fg_logits.astype(jnp.float32), axis=-1)[..., 1]


def read_memory(mem_keys, mem_values, slot_ok, query_key):
  """Per-object dense read: keys [K, S, N, Ck], values [K, S, N, Cv], slot_ok [S],
  query key [Q, Ck] -> readout [K, Q, Cv] (softmax over each object's S*N positions)."""
  k, s, n, ck = mem_keys.shape
  aff = jax.vmap(dot_affinity, in_axes=(0, None))(mem_keys.reshape(k, s * n, ck),
                                                  query_key)           # [K, Q, M] float32
  aff = jnp.where(jnp.repeat(slot_ok, n)[None, None, :], aff, -jnp.inf)
  w = jax.nn.softmax(aff, axis=-1).astype(mem_values.dtype)
  return jnp.einsum('kqm,kmc->kqc', w, mem_values.reshape(k, s * n, -1))


def clip_logits(model, variables, frames, labels, valid, use_scan: bool = True):
  """One clip: frames [T, H, W, 3] normalised, labels [T, H, W] slots, valid [K].

  Returns the decoder's per-object logits of frames 1..T-1: [T-1, K, H, W, 2]
  float32 (``loss.clip_loss`` soft-aggregates them).
  """
  apply = functools.partial(model.apply, variables)
  t_len, k = frames.shape[0], valid.shape[0]
  qk, qv, r3, r2 = apply(frames[1:], method='encode_query')            # frames 1..T-1
  hk, wk, ck = qk.shape[1:]
  n = hk * wk
  qkeys = qk.reshape(t_len - 1, n, ck)                                 # [T-1, Q, Ck]
  dtype = qv.dtype

  slots = jnp.arange(1, k + 1)[:, None, None]
  gt0 = ((labels[0][None] == slots) & valid[:, None, None]).astype(dtype)   # [K, H, W]
  k0, v0 = apply(frames[0], gt0, method='encode_memory')              # [K, h, w, C*]
  cv = v0.shape[-1]
  s = t_len - 1                                                        # memory slots
  mem_keys = jnp.zeros((k, s, n, ck), k0.dtype).at[:, 0].set(k0.reshape(k, n, ck))
  mem_values = jnp.zeros((k, s, n, cv), dtype).at[:, 0].set(v0.reshape(k, n, cv))
  slot_ok = jnp.arange(s) == 0

  def predict(mem_keys, mem_values, slot_ok, qkey, qval, q3, q2):
    readout = read_memory(mem_keys, mem_values, slot_ok, qkey)         # [K, Q, Cv]
    logits = apply(readout.reshape(k, hk, wk, cv), qval, q3[None], q2[None],
                   method='decode')                                    # [K, H, W, 2]
    return logits.astype(jnp.float32)

  def step(carry, x):
    mem_keys, mem_values, slot_ok = carry
    t, image, qkey, qval, q3, q2 = x
    logits = predict(mem_keys, mem_values, slot_ok, qkey, qval, q3, q2)
    agg = aggregate_logits(fg_probability(logits), valid)              # [K+1, H, W]
    soft = jax.nn.softmax(agg, axis=0)[1:].astype(dtype)               # [K, H, W]
    mk, mv = apply(image, soft, method='encode_memory')
    mem_keys = jax.lax.dynamic_update_index_in_dim(
        mem_keys, mk.reshape(k, 1, n, ck), t, axis=1)
    mem_values = jax.lax.dynamic_update_index_in_dim(
        mem_values, mv.reshape(k, 1, n, cv), t, axis=1)
    slot_ok = slot_ok | (jnp.arange(s) == t)
    return (mem_keys, mem_values, slot_ok), logits

  # The scan's xs: frames 1..T-2 (query features index i is frame i + 1).
  mid = slice(0, t_len - 2)
  xs = (jnp.arange(1, t_len - 1), frames[1:t_len - 1], qkeys[mid], qv[mid], r3[mid], r2[mid])
  carry = (mem_keys, mem_values, slot_ok)
  if use_scan:
    carry, middle = jax.lax.scan(step, carry, xs)
  else:
    outs = []
    for i in range(t_len - 2):
      carry, logits = step(carry, jax.tree.map(lambda a: a[i], xs))
      outs.append(logits)
    middle = (jnp.stack(outs) if outs
              else jnp.zeros((0, k) + frames.shape[1:3] + (2,), jnp.float32))
  last = predict(*carry, qkeys[-1], qv[-1], r3[-1], r2[-1])
  return jnp.concatenate([middle, last[None]], axis=0)                 # [T-1, K, H, W, 2]
