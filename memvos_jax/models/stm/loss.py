"""STM's training loss (Oh et al., ICCV 2019): cross-entropy of the soft-aggregated object probabilities.

The official STM release has no training code; this is the paper's loss.
Each object's foreground probability (the decoder's two-way softmax, as the
official ``Segment``) is combined by soft aggregation (the paper's Eq. 5,
official ``Soft_aggregation``: log-odds of clamp([prod(1 - p), p_1..p_K],
1e-7, 1 - 1e-7), softmax over background and objects), and the loss is the
cross-entropy of these probabilities against the labels, the mean over the
pixels of each predicted frame, averaged over the batch and summed over the
frames 1..T-1 of the clip (as STCN's ``LossComputer``, which follows STM's
training). Invalid object slots take no part (their log-odds are -1e4, a
probability of exactly 0 in float32), as the paper's aggregation runs over
the objects present and as our inference ``nn.aggregate`` does (the official
evaluation code's padding slots keep clamp(0) = 1e-7, log-odds -16.1). Checked against a numpy transcription
of the formula: ``tests/test_loss_parity.py``. ``loss_fn`` is the batch loss
that the shared update (``training.update``) differentiates: the clip unrolled
by ``unroll.clip_logits``, this loss, the training IoU.
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.training.batch import object1_iou, prepare
from memvos_jax.models.stm.unroll import clip_logits
from memvos_jax.nn import aggregate


def aggregate_logits(fg_logits, valid):
  """fg_logits [K, H, W, 2] (decoder output), valid [K] bool -> [K+1, H, W] aggregate logits."""
  return aggregate.aggregate_logits(jax.nn.softmax(fg_logits, axis=-1)[..., 1], valid)


def frame_loss(fg_logits, target, valid):
  """fg_logits [K, H, W, 2], target [H, W] int in 0..K, valid [K] -> scalar pixel-mean CE."""
  logp = jax.nn.log_softmax(aggregate_logits(fg_logits, valid), axis=0)   # [K+1, H, W]
  return -jnp.mean(jnp.take_along_axis(logp, target[None].astype(jnp.int32), axis=0))


def clip_loss(fg_logits, labels, valid):
  """fg_logits [B, T-1, K, H, W, 2], labels [B, T, H, W], valid [B, K] -> (loss, per-frame [T-1])."""
  per = jax.vmap(jax.vmap(frame_loss, in_axes=(0, 0, None)), in_axes=(0, 0, 0))(
      fg_logits, labels[:, 1:], valid)                                   # [B, T-1]
  frame = jnp.mean(per, axis=0)
  return jnp.sum(frame), frame


def iou(fg_logits, labels, valid):
  """The training monitor (as STCN's): (intersection + 1) / (union + 1) of object 1 over the
  batch, its prediction the argmax of the soft aggregation. fg_logits [B, T-1, K, H, W, 2]."""
  agg = jax.vmap(jax.vmap(aggregate_logits, in_axes=(0, None)))(fg_logits, valid)
  return object1_iou(jnp.argmax(agg, axis=2), labels[:, 1:], valid[:, 0])


def loss_fn(params, batch_stats, batch, step, model, config):
  """Mean over the batch of the summed per-frame cross-entropy; plus metrics (``step``
  unused: the paper's loss has no schedule)."""
  del step
  variables, frames, labels, use_scan = prepare(params, batch_stats, batch, config)
  valid = batch['valid']
  fg = jax.vmap(functools.partial(clip_logits, model, variables, use_scan=use_scan))(
      frames, labels, valid)                                             # [B, T-1, K, H, W, 2]
  fg = fg.astype(jnp.float32)
  total, per_frame = clip_loss(fg, labels, valid)
  metrics = {'loss': total, 'iou': iou(fg, labels, valid)}
  for i in range(per_frame.shape[0]):
    metrics[f'loss_{i + 1}'] = per_frame[i]
  return total, metrics
