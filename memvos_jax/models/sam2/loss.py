"""SAM 2's training loss: focal, dice, IoU and object-score losses over frames and prediction steps.

Matches the official facebookresearch/sam2 ``training/loss_fns.py``
``MultiStepMultiMasksAndIous`` (with its ``sigmoid_focal_loss``,
``dice_loss`` and ``iou_loss``), as configured by the official training
config ``sam2.1_hiera_b+_MOSE_finetune.yaml`` (``LossConfig()``'s defaults:
weights focal 20, dice 1, IoU 1, class 1; IoU loss on every candidate mask,
L1; object-score loss, a plain BCE) or by the class's own defaults
(``CLASS_DEFAULTS``: IoU loss on the selected mask, MSE, no object-score
loss). Recorded against the official code: ``tests/test_loss_parity.py``.

For each frame and each prediction step of that frame (mask logits
[N, M, H, W], predicted IoUs [N, M], object-score logits [N, 1], targets
[N, H, W], N objects, M candidate masks): per-mask focal (spatial mean) and
dice losses, each divided by the number of objects; with M > 1 only the
candidate with the lowest ``w_focal * focal + w_dice * dice`` is supervised
(argmin, first on ties), the IoU loss on every candidate (mean) or on that
one; the three are zeroed for objects absent from the target when the object
score is trained, and summed over the objects. Terms add up over steps and
frames; the total is the weighted sum of the four terms (zero weights left
out). ``num_objects`` is N, as on one process (the official code averages
it over the processes of a distributed run).
"""

import dataclasses
from typing import Dict, Sequence

import jax
import jax.numpy as jnp

MASKS = 'multistep_pred_multimasks_high_res'   # per step: [N, M, H, W] mask logits
IOUS = 'multistep_pred_ious'                   # per step: [N, M] predicted IoUs
OBJECT_SCORES = 'multistep_object_score_logits'  # per step: [N, 1] object-score logits
TERMS = ('loss_mask', 'loss_dice', 'loss_iou', 'loss_class')


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Defaults: the official training config (``trainer.loss.all`` of the SAM 2.1 training yaml)."""
  weight_mask: float = 20.0
  weight_dice: float = 1.0
  weight_iou: float = 1.0
  weight_class: float = 1.0
  focal_alpha: float = 0.25
  focal_gamma: float = 2
  supervise_all_iou: bool = True
  iou_use_l1_loss: bool = True
  pred_obj_scores: bool = True
  focal_alpha_obj_score: float = -1.0
  focal_gamma_obj_score: float = 0.0

  def weights(self):
    return {'loss_mask': self.weight_mask, 'loss_dice': self.weight_dice,
            'loss_iou': self.weight_iou, 'loss_class': self.weight_class}


# ``MultiStepMultiMasksAndIous(weight_dict)`` with every other argument left at its default.
CLASS_DEFAULTS = LossConfig(supervise_all_iou=False, iou_use_l1_loss=False, pred_obj_scores=False)


def _power(x, gamma):
  # gamma == 0: no modulating factor (torch's pow backward gives 0 there, never nan).
  if gamma == 0:
    return jnp.ones_like(x)
  if float(gamma).is_integer():
    return x ** int(gamma)                       # integer power, as for torch's int gamma
  return x ** gamma


def sigmoid_focal_loss(logits, targets, num_objects, alpha=0.25, gamma=2, multimask=False):
  """Official ``sigmoid_focal_loss``.

  multimask: logits, targets [N, M, H, W] -> [N, M] (spatial mean / num_objects);
  otherwise logits, targets [N, D] -> scalar (mean over D, sum over N, / num_objects).
  """
  prob = jax.nn.sigmoid(logits)
  ce = jax.nn.softplus(logits) - logits * targets            # BCE with logits
  p_t = prob * targets + (1.0 - prob) * (1.0 - targets)
  loss = ce * _power(1.0 - p_t, gamma)
  if alpha >= 0:
    loss = (alpha * targets + (1.0 - alpha) * (1.0 - targets)) * loss
  if multimask:
    return loss.reshape(loss.shape[:2] + (-1,)).mean(-1) / num_objects
  return loss.mean(1).sum() / num_objects


def dice_loss(logits, targets, num_objects):
  """Official ``dice_loss`` (multimask): logits, targets [N, M, H, W] -> [N, M] / num_objects."""
  p = jax.nn.sigmoid(logits).reshape(logits.shape[:2] + (-1,))
  t = targets.reshape(targets.shape[:2] + (-1,))
  numerator = 2.0 * jnp.sum(p * t, -1)
  denominator = jnp.sum(p, -1) + jnp.sum(t, -1)
  return (1.0 - (numerator + 1.0) / (denominator + 1.0)) / num_objects


def iou_loss(logits, targets, pred_ious, num_objects, use_l1_loss=False):
  """Official ``iou_loss`` (multimask): masks [N, M, H, W], pred_ious [N, M] -> [N, M].

  The actual IoU of each candidate (logits > 0 against targets > 0, union
  clamped to >= 1) is a constant; only the predicted IoUs get a gradient.
  """
  pred = (logits > 0).reshape(logits.shape[:2] + (-1,))
  gt = (targets > 0).reshape(targets.shape[:2] + (-1,))
  inter = jnp.sum(pred & gt, -1).astype(jnp.float32)
  union = jnp.sum(pred | gt, -1).astype(jnp.float32)
  actual = inter / jnp.maximum(union, 1.0)
  diff = pred_ious - actual
  loss = jnp.abs(diff) if use_l1_loss else diff * diff
  return loss / num_objects


def step_losses(masks, ious, object_scores, targets, num_objects, config: LossConfig):
  """One prediction step: masks [N, M, H, W], ious [N, M], object_scores [N, 1], targets [N, H, W].

  Returns the four terms of this step (scalars), official ``_update_losses``.
  """
  target_masks = jnp.broadcast_to(targets[:, None].astype(masks.dtype), masks.shape)
  focal = sigmoid_focal_loss(masks, target_masks, num_objects, config.focal_alpha,
                             config.focal_gamma, multimask=True)                  # [N, M]
  dice = dice_loss(masks, target_masks, num_objects)                               # [N, M]
  if config.pred_obj_scores:
    target_obj = jnp.any(targets.reshape(targets.shape[0], -1) > 0, -1)[:, None]
    target_obj = target_obj.astype(masks.dtype)                                    # [N, 1]
    loss_class = sigmoid_focal_loss(object_scores, target_obj, num_objects,
                                    config.focal_alpha_obj_score, config.focal_gamma_obj_score)
  else:
    target_obj = jnp.ones((masks.shape[0], 1), masks.dtype)
    loss_class = jnp.zeros((), masks.dtype)
  iou = iou_loss(masks, target_masks, ious, num_objects, config.iou_use_l1_loss)  # [N, M]
  if masks.shape[1] > 1:
    combo = focal * config.weight_mask + dice * config.weight_dice
    best = jnp.argmin(combo, axis=-1)[:, None]                                     # [N, 1]
    loss_mask = jnp.take_along_axis(focal, best, axis=1)
    loss_dice = jnp.take_along_axis(dice, best, axis=1)
    if config.supervise_all_iou:
      loss_iou = jnp.mean(iou, axis=-1, keepdims=True)
    else:
      loss_iou = jnp.take_along_axis(iou, best, axis=1)
  else:
    loss_mask, loss_dice, loss_iou = focal, dice, iou
  return {'loss_mask': jnp.sum(loss_mask * target_obj),
          'loss_dice': jnp.sum(loss_dice * target_obj),
          'loss_iou': jnp.sum(loss_iou * target_obj),
          'loss_class': loss_class}


def multistep_loss(outputs: Sequence[Dict], targets, config: LossConfig = LossConfig()):
  """Official ``MultiStepMultiMasksAndIous.forward`` on one process.

  outputs: one dict per frame with lists over that frame's prediction steps
  under ``MASKS`` ([N, M, H, W]), ``IOUS`` ([N, M]) and ``OBJECT_SCORES``
  ([N, 1]); targets [T, N, H, W] binary. Returns the four terms summed over
  frames and steps, and ``core_loss``, their weighted sum (the total).
  """
  assert len(outputs) == targets.shape[0]
  num_objects = max(float(targets.shape[1]), 1.0)
  terms = {k: jnp.zeros((), jnp.float32) for k in TERMS}
  for out, target in zip(outputs, targets):
    assert len(out[MASKS]) == len(out[IOUS]) == len(out[OBJECT_SCORES])
    for masks, ious, scores in zip(out[MASKS], out[IOUS], out[OBJECT_SCORES]):
      step = step_losses(masks, ious, scores, target, num_objects, config)
      terms = {k: terms[k] + step[k] for k in TERMS}
  core = sum(terms[k] * w for k, w in config.weights().items() if w != 0)
  return {**terms, 'core_loss': core}


def loss(outputs, targets, config: LossConfig = LossConfig()):
  """(total, terms): ``core_loss`` to differentiate, and every term (``multistep_loss``)."""
  terms = multistep_loss(outputs, targets, config)
  return terms['core_loss'], terms
