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
"""

import jax
import jax.numpy as jnp

from memvos_jax.models.afb_urr.urr import confidence_loss

LU = 0.5      # official train.py --lu default
_EPS = 1e-7


def class_logits(fg_probs):
  """fg_probs [B, O, H, W] in [0, 1] -> log-odds of the clamped probabilities [B, O, H, W]."""
  p = jnp.clip(fg_probs, _EPS, 1.0 - _EPS)
  return jnp.log(p / (1.0 - p))


def cross_entropy(fg_probs, labels):
  """fg_probs [B, O, H, W], labels [B, H, W] int class -> scalar pixel-mean CE over the classes."""
  logp = jax.nn.log_softmax(class_logits(fg_probs), axis=1)                   # [B, O, H, W]
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
