"""STCN unrolled over a training clip with ``jax.lax.scan`` (official training semantics).

Frame 0's ground truth is encoded into memory; frame t (1 <= t < T) is
segmented by reading frames 0..t-1 with a full softmax over every memory
position (training reads no top-k: ``model/network.py`` ``get_affinity``),
and, except for the last frame, its value is encoded from its predicted soft
masks (``softmax(aggregate logits)[1:]``, official ``prev_mask``) and written
into the next memory slot. For T = 3 this is exactly the official
``do_pass``: frame 1 reads frame 0, frame 2 reads frames 0 and 1.

Objects are a fixed number K of slots with a validity mask (official
``selector``): an invalid object has probability 0 and takes no part in the
aggregation (its logit is -1e4, so the loss ignores it).
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.memory import l2_affinity
from memvos_jax.nn.aggregate import aggregate_logits   # noqa: F401 (also re-exported)


def read_memory(mem_keys, mem_values, slot_ok, query_key):
  """Full-softmax read: keys [S, N, Ck], values [K, S, N, Cv], slot_ok [S] -> [K, Q, Cv]."""
  s, n, ck = mem_keys.shape
  aff = l2_affinity(mem_keys.reshape(s * n, ck), query_key)          # [Q, M]
  aff = jnp.where(jnp.repeat(slot_ok, n)[None, :], aff, -jnp.inf)
  w = jax.nn.softmax(aff.astype(jnp.float32), axis=1).astype(mem_values.dtype)
  k, _, _, cv = mem_values.shape
  return jnp.einsum('qm,kmc->kqc', w, mem_values.reshape(k, s * n, cv))


def clip_logits(model, variables, frames, labels, valid, use_scan: bool = True):
  """One clip: frames [T, H, W, 3] normalised, labels [T, H, W] slots, valid [K].

  Returns the aggregate logits of frames 1..T-1: [T-1, K+1, H, W] float32.
  ``use_scan=False`` runs the same step body in a Python loop (XLA:CPU emits
  convolutions inside a while loop as plain loops: the backward pass of the
  scan is ~20x slower there; see ``docs/training.md``).
  """
  apply = functools.partial(model.apply, variables)
  t_len, k = frames.shape[0], valid.shape[0]
  k16, f16_thin, f16, f8, f4 = apply(frames, method='encode_key')    # batch = T
  hk, wk, ck = k16.shape[1:]
  keys = k16.reshape(t_len, hk * wk, ck)                              # [T, N, Ck]
  dtype = f16.dtype

  slots = jnp.arange(1, k + 1)[:, None, None]
  gt0 = ((labels[0][None] == slots) & valid[:, None, None]).astype(dtype)  # [K, H, W]
  v0 = apply(frames[0], f16[0], gt0, method='encode_value')           # [K, h, w, Cv]
  cv = v0.shape[-1]
  mem_keys = keys[:t_len - 1]                                         # [S, N, Ck], S = T-1
  mem_values = jnp.zeros((k, t_len - 1, hk * wk, cv), dtype)
  mem_values = mem_values.at[:, 0].set(v0.reshape(k, hk * wk, cv))
  slot_ok = jnp.arange(t_len - 1) == 0

  def predict(mem_values, slot_ok, qk, q_thin, q8, q4):
    readout = read_memory(mem_keys, mem_values, slot_ok, qk)         # [K, Q, Cv]
    logits = apply(readout.reshape(k, hk, wk, cv), q_thin, q8[None], q4[None],
                   method='decode')                                   # [K, H, W]
    prob = jax.nn.sigmoid(logits.astype(jnp.float32))
    return aggregate_logits(prob, valid)                              # [K+1, H, W]

  def step(carry, x):
    mem_values, slot_ok = carry
    t, image, qk, q16, q_thin, q8, q4 = x
    agg = predict(mem_values, slot_ok, qk, q_thin, q8, q4)
    soft = jax.nn.softmax(agg, axis=0)[1:].astype(dtype)              # [K, H, W]
    v = apply(image, q16, soft, method='encode_value')                # [K, h, w, Cv]
    mem_values = jax.lax.dynamic_update_index_in_dim(
        mem_values, v.reshape(k, 1, hk * wk, cv), t, axis=1)
    slot_ok = slot_ok | (jnp.arange(t_len - 1) == t)
    return (mem_values, slot_ok), agg

  # The scan's xs: the per-frame features of frames 1..T-2.
  mid = slice(1, t_len - 1)
  xs = (jnp.arange(1, t_len - 1), frames[mid], keys[mid], f16[mid], f16_thin[mid], f8[mid],
        f4[mid])
  if use_scan:
    (mem_values, slot_ok), middle = jax.lax.scan(step, (mem_values, slot_ok), xs)
  else:
    carry, outs = (mem_values, slot_ok), []
    for i in range(t_len - 2):
      carry, agg = step(carry, jax.tree.map(lambda a: a[i], xs))
      outs.append(agg)
    (mem_values, slot_ok) = carry
    middle = jnp.stack(outs) if outs else jnp.zeros((0, k + 1) + frames.shape[1:3])
  last = predict(mem_values, slot_ok, keys[-1], f16_thin[-1], f8[-1], f4[-1])
  return jnp.concatenate([middle, last[None]], axis=0)               # [T-1, K+1, H, W]
