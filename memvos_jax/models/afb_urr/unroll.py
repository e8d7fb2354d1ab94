"""AFB-URR over a training clip (official training semantics).

The official ``train.py`` (``train_model``) segments a clip of ``clip_n``
frames (6 by default) as follows:

  * frame 0 is memorised with its ground truth (``model.memorize``): every class
    (the background and the objects) encodes the frame with its one-hot mask
    and the complement; the feature bank is initialised from these keys and
    values (``FeatureBank.init_bank``: each class holds exactly frame 0's
    positions);
  * frames 1..T-1 are all segmented against that bank (``model.segment`` on the
    batch ``frames[1:]``): the network is built with ``update_bank=False``, so
    the reads count no usage, and the bank is never updated during the clip:
    no merge, no LFU removal, no predicted mask is memorised;
  * gradients flow through the bank into the memory encoder.

Here the bank is the adaptive bank of inference (``memory.adaptive``) with
fixed capacity, one frame of positions per class (validity = its count), read
by the same ``adaptive.read`` (without usage counting). Objects are K slots with
a validity mask (``valid`` [K], the sampler's): the classes are the background
and the K slots, and an invalid slot takes no part in the decoder's
normalisation over classes (``URRDecoder`` ``valid``), in the cross-entropy or
in the uncertainty (``loss``), so a clip with n valid objects gives the
official numbers for obj_n = n + 1.

``use_scan``: the query frames are segmented in a ``jax.lax.scan`` over frames,
or (False) the same step body in a Python loop (XLA:CPU's backward pass of
convolutions inside a scan is ~20x slower; ``training.clip_loop``). Each
frame reads only frame 0's memory, so the order does not matter.
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.memory import adaptive


def class_masks(labels0, valid, dtype=jnp.float32):
  """Frame 0's slots [H, W] and valid [K] -> one-hot class masks [K+1, H, W] (bg first)
  and the class validity [K+1] (the background always exists)."""
  k = valid.shape[0]
  class_valid = jnp.concatenate([jnp.ones((1,), bool), valid])
  masks = labels0[None] == jnp.arange(k + 1)[:, None, None]
  return (masks & class_valid[:, None, None]).astype(dtype), class_valid


def init_bank(model, variables, frame0, masks):
  """Official ``memorize`` + ``init_bank``: frame [H, W, 3], class masks [O, H, W] ->
  the adaptive bank holding frame 0's positions for every class (frame index 0)."""
  keys, values = model.apply(variables, frame0, masks, method='encode_memory')  # [O, h, w, C]
  o, hk, wk, ck = keys.shape
  n = hk * wk
  bank = adaptive.init(o, n, ck, values.shape[-1], keys.dtype)
  return adaptive.reset(bank, keys.reshape(o, n, ck), values.reshape(o, n, -1), 0)


def clip_probs(model, variables, frames, labels, valid, use_scan: bool = True):
  """One clip: frames [T, H, W, 3] normalised, labels [T, H, W] slots, valid [K].

  Returns the decoder's foreground probability of every class on frames 1..T-1,
  [T-1, K+1, H, W] float32 (class 0 the background; the official ``segment``
  output before its log-odds), and the class validity [K+1].
  """
  apply = functools.partial(model.apply, variables)
  dtype = frames.dtype
  masks, class_valid = class_masks(labels[0], valid, dtype)
  o = masks.shape[0]
  bank = init_bank(model, variables, frames[0], masks)
  k4, v4, r3, r2, r1 = apply(frames[1:], method='encode_query')     # batch T-1
  hk, wk = k4.shape[1:3]

  def step(carry, x):
    qk, qv, f3, f2, f1 = x
    readout, _ = adaptive.read(bank, qk.reshape(hk * wk, -1), count_usage=False)
    fg = apply(readout.reshape(o, hk, wk, -1).astype(dtype), qv, f3[None], f2[None],
               f1[None], class_valid, method='decode')              # [O, H, W]
    return carry, fg.astype(jnp.float32)

  xs = (k4, v4, r3, r2, r1)
  if use_scan:
    _, probs = jax.lax.scan(step, None, xs)
  else:
    probs = jnp.stack([step(None, jax.tree.map(lambda a: a[i], xs))[1]
                       for i in range(frames.shape[0] - 1)])
  return probs, class_valid
