"""STCN's training loss: bootstrapped cross-entropy (official ``model/losses.py``) and the IoU monitor.

Before ``start_warm`` steps: plain pixel-mean cross-entropy. Then the mean of
the top-p hardest pixels, p falling linearly from 1 to ``top_p`` at
``end_warm``. Computed per sample and frame, averaged over the batch, summed
over the predicted frames (official ``total_loss``). The top-k uses a full
sort with a mask, since k depends on the (traced) step. ``loss_fn`` is the
batch loss that the shared update (``training.update``) differentiates.
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.models.stcn.unroll import clip_logits
from memvos_jax.training.batch import object1_iou, prepare


def bootstrap_p(step, start_warm: int, end_warm: int, top_p: float):
  step = jnp.asarray(step, jnp.float32)
  ramp = top_p + (1.0 - top_p) * (end_warm - step) / max(end_warm - start_warm, 1)
  return jnp.where(step < start_warm, 1.0, jnp.where(step > end_warm, top_p, ramp))


def bootstrapped_ce(logits, target, p):
  """logits [C, H, W] float32, target [H, W] int, p in (0, 1] -> scalar."""
  logp = jax.nn.log_softmax(logits, axis=0)
  raw = -jnp.take_along_axis(logp, target[None].astype(jnp.int32), axis=0).reshape(-1)
  n = raw.shape[0]
  k = jnp.maximum(jnp.floor(n * p), 1.0)
  hardest = -jnp.sort(-raw)                                           # descending
  keep = jnp.arange(n, dtype=jnp.float32) < k
  return jnp.sum(jnp.where(keep, hardest, 0.0)) / k


def clip_loss(logits, labels, p):
  """logits [B, T-1, C, H, W], labels [B, T, H, W] -> (loss, per-frame losses [T-1])."""
  per = jax.vmap(jax.vmap(bootstrapped_ce, in_axes=(0, 0, None)), in_axes=(0, 0, None))(
      logits, labels[:, 1:], p)                                       # [B, T-1]
  frame_loss = jnp.mean(per, axis=0)
  return jnp.sum(frame_loss), frame_loss


def iou(logits, labels, valid):
  """Official monitor: (intersection + 1) / (union + 1) of object 1 over the batch."""
  return object1_iou(jnp.argmax(logits, axis=2), labels[:, 1:], valid[:, 0])


def loss_fn(params, batch_stats, batch, step, model, config):
  """Mean over the batch of the summed per-frame bootstrapped CE; plus metrics."""
  t = config.training
  variables, frames, labels, use_scan = prepare(params, batch_stats, batch, config)
  logits = jax.vmap(functools.partial(clip_logits, model, variables,
                                      use_scan=use_scan))(
      frames, labels, batch['valid'])                                # [B, T-1, K+1, H, W]
  logits = logits.astype(jnp.float32)
  p = bootstrap_p(step, t.bce_start_warm, t.bce_end_warm, t.bce_top_p)
  total, per_frame = clip_loss(logits, labels, p)
  # The plain cross-entropy (p = 1), comparable across the bootstrapping schedule.
  logp = jax.nn.log_softmax(logits, axis=2)                          # [B, T-1, C, H, W]
  pixel = -jnp.take_along_axis(logp, labels[:, 1:, None], axis=2)    # [B, T-1, 1, H, W]
  ce = jnp.sum(jnp.mean(pixel, axis=(0, 2, 3, 4)))
  metrics = {'loss': total, 'bootstrap_p': p, 'ce': ce,
             'iou': iou(logits, labels, batch['valid'])}
  for i in range(per_frame.shape[0]):
    metrics[f'loss_{i + 1}'] = per_frame[i]
  return total, metrics
