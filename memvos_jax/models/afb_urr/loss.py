"""AFB-URR's training loss: cross-entropy plus ``lu`` times the uncertainty (confidence) loss.

Matches the official xmlyqing00/AFB-URR training step: ``train.py``
``train_model`` computes ``criterion(scores, label) + args.lu * uncertainty``
with ``criterion = torch.nn.CrossEntropyLoss()`` (pixel mean) and ``--lu``
0.5 by default, where ``AFB_URR.segment`` (training mode) turns the
decoder's per-class foreground probabilities into the scores (log-odds of
the probabilities clamped to [1e-7, 1 - 1e-7], a softmax over the classes
taken by the cross-entropy) and gives the uncertainty (``confidence_loss``
in ``urr.py``: ``myutils.calc_uncertainty`` of their softmax over the
classes, L2 norm over the image / sqrt(H W), batch mean). Classes include the
background (class 0); the batch is the clip's segmented frames.
Recorded against the official code: ``tests/test_loss_parity.py``.

``loss_fn`` is the batch loss the shared update (``training.update``)
differentiates: the clips are unrolled by ``unroll.clip_probs`` (the official
training forward); each clip's loss is the official one (frame-mean CE +
lu * frame-mean uncertainty, over the classes that exist), averaged over the
clips of the batch that have an object (the official loop skips a clip whose
first frame shows none).
"""

import functools

import jax
import jax.numpy as jnp

from memvos_jax.training.batch import object1_iou, prepare
from memvos_jax.models.afb_urr.unroll import clip_probs
from memvos_jax.models.afb_urr.urr import confidence_loss

LU = 0.5      # official train.py --lu default
_EPS = 1e-7
_ABSENT = -1e4   # score of a class that does not exist (a padded object slot)


def class_logits(fg_probs, valid=None):
  """fg_probs [B, O, H, W] in [0, 1] -> log-odds of the clamped probabilities [B, O, H, W].

  ``valid`` [O] bool (None: all): other classes score -1e4 (no share of any softmax).
  """
  p = jnp.clip(fg_probs, _EPS, 1.0 - _EPS)
  logits = jnp.log(p / (1.0 - p))
  if valid is not None:
    logits = jnp.where(valid[None, :, None, None], logits, _ABSENT)
  return logits


def cross_entropy(fg_probs, labels, valid=None):
  """fg_probs [B, O, H, W], labels [B, H, W] int class -> scalar pixel-mean CE over the
  classes (``valid`` [O]: those that exist, None: all)."""
  logp = jax.nn.log_softmax(class_logits(fg_probs, valid), axis=1)            # [B, O, H, W]
  picked = jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=1)  # [B, 1, H, W]
  return -jnp.mean(picked)


def loss_terms(fg_probs, labels, lu: float = LU):
  """fg_probs [B, O, H, W] (decoder output), labels [B, H, W] -> {'ce', 'uncertainty', 'total'}."""
  ce = cross_entropy(fg_probs, labels)
  unc = confidence_loss(fg_probs)
  return {'ce': ce, 'uncertainty': unc, 'total': ce + lu * unc}


def loss(fg_probs, labels, lu: float = LU):
  """(total, terms): the scalar to differentiate and every term (``loss_terms``)."""
  terms = loss_terms(fg_probs, labels, lu)
  return terms['total'], terms


def frame_terms(fg_probs, labels, valid):
  """One clip: fg_probs [T-1, O, H, W], labels [T-1, H, W], valid [O] -> per-frame
  (CE [T-1], uncertainty [T-1]). Their means are the official clip terms (every frame
  has the same number of pixels)."""
  one = lambda p, l: (cross_entropy(p[None], l[None], valid), confidence_loss(p[None], valid))
  return jax.vmap(one)(fg_probs, labels)


def iou(scores, labels, has):
  """Official-style monitor: (intersection + 1) / (union + 1) of object 1 (class 1) over
  the batch; scores [B, T-1, O, H, W], labels [B, T-1, H, W], has [B] (object 1 exists)."""
  return object1_iou(jnp.argmax(scores, axis=2), labels, has)


def loss_fn(params, batch_stats, batch, step, model, config):
  """The batch loss (``training.update``): mean over the clips with an object of the
  official clip loss; metrics: loss, ce, uncertainty, iou, loss_i per predicted frame."""
  del step   # no schedule in the loss
  t = config.training
  variables, frames, labels, use_scan = prepare(params, batch_stats, batch, config)
  probs, class_valid = jax.vmap(functools.partial(clip_probs, model, variables,
                                                  use_scan=use_scan))(
      frames, labels, batch['valid'])                                # [B, T-1, O, H, W], [B, O]
  return batch_loss(probs, class_valid, labels, batch['valid'], t.lu)


def batch_loss(probs, class_valid, labels, valid, lu: float = LU):
  """probs [B, T-1, O, H, W] (``clip_probs``), class_valid [B, O], labels [B, T, H, W],
  valid [B, K] -> (loss, metrics): ``loss_fn`` after the network."""
  ce, unc = jax.vmap(frame_terms)(probs, labels[:, 1:], class_valid)  # [B, T-1] each
  per = ce + lu * unc                                                # [B, T-1]
  has = jnp.any(valid, axis=1)                                       # [B]
  w = has.astype(jnp.float32) / jnp.maximum(jnp.sum(has), 1)
  frame_loss = jnp.sum(w[:, None] * per, axis=0)                     # [T-1]
  total = jnp.mean(frame_loss)
  scores = jax.vmap(class_logits)(probs, class_valid)                # [B, T-1, O, H, W]
  metrics = {'loss': total,
             'ce': jnp.sum(w * jnp.mean(ce, axis=1)),
             'uncertainty': jnp.sum(w * jnp.mean(unc, axis=1)),
             'iou': iou(scores, labels[:, 1:], valid[:, 0])}
  for i in range(frame_loss.shape[0]):
    metrics[f'loss_{i + 1}'] = frame_loss[i]
  return total, metrics
