"""SAM 2's training batch loss: the unrolled clips (``unroll``) scored by the official loss.

``loss_fn(params, batch_stats, batch, step, model, config)`` is what the
shared update differentiates (``training.update.train_step``). The prompt
choices of the step come from ``training.seed`` folded with the step
(``prompts.make_plan``): a resumed run draws the same ones. Every object of
every clip is unrolled by ``unroll.unroll``; every prediction step of
every frame is scored by ``loss.step_losses`` (the official
``MultiStepMultiMasksAndIous._update_losses``: focal, dice, IoU and
object-score terms with the multi-mask selection), summed over steps and
frames, summed over the valid objects of the batch and divided by their
number (official ``num_objects``: the objects of the batch; here the valid
object slots of the global batch), then weighted (20, 1, 1, 1).

The unroll returns three candidates per step (a single mask repeated),
which gives the official single-mask loss exactly: the argmin of equal
candidates is the first, and the mean IoU loss of equal terms is the term.
A mask prompt's output is the ground truth at +-10 at full resolution
(official ``_use_mask_as_output``), rebuilt here; every other candidate is
upsampled bilinearly to the image size, as the official
``high_res_multimasks``.
"""

import dataclasses

import jax
import jax.numpy as jnp

import memvos_jax.models.sam2.loss as official_loss
import memvos_jax.models.sam2.prompts as prompts
import memvos_jax.models.sam2.tracking as tracking
import memvos_jax.models.sam2.unroll as unroll
from memvos_jax.models.sam2.inference import Sam2Settings


def loss_config(config) -> official_loss.LossConfig:
  t = config.training
  return official_loss.LossConfig(
      weight_mask=t.loss_mask, weight_dice=t.loss_dice, weight_iou=t.loss_iou,
      weight_class=t.loss_class, focal_alpha=t.focal_alpha, focal_gamma=t.focal_gamma,
      supervise_all_iou=t.supervise_all_iou, iou_use_l1_loss=t.iou_use_l1_loss,
      pred_obj_scores=True, focal_alpha_obj_score=t.focal_alpha_obj_score,
      focal_gamma_obj_score=t.focal_gamma_obj_score)


def unroll_settings(config, use_scan: bool | None = None) -> unroll.UnrollSettings:
  """The static unroll options from ``config.training`` (prompts) and ``config.inference``
  (the model's multimask rule and pointer reach, the same options in training)."""
  t, inf = config.training, config.inference
  # PromptSettings' fields are config.training keys of the same names.
  ps = prompts.PromptSettings(**{f.name: t[f.name]
                                 for f in dataclasses.fields(prompts.PromptSettings)})
  ms = Sam2Settings(
      max_obj_ptrs_in_encoder=inf.max_obj_ptrs_in_encoder,
      multimask_output_in_sam=inf.multimask_output_in_sam,
      multimask_min_pt_num=inf.multimask_min_pt_num,
      multimask_max_pt_num=inf.multimask_max_pt_num,
      multimask_output_for_tracking=inf.multimask_output_for_tracking)
  if use_scan is None:
    use_scan = t.clip_loop == 'scan' or (t.clip_loop == 'auto' and jax.default_backend() != 'cpu')
  return unroll.UnrollSettings(prompts=ps, model=ms,
                               freeze_image_encoder=t.freeze_image_encoder, use_scan=use_scan)


def candidates_high_res(model, out, target):
  """One object's candidates [P, n, 3, 4h, 4w] -> [P, n, 3, S, S] logits as the loss sees them:
  upsampled, and a mask prompt's step 0 the ground truth (target [P, S, S]) at +-10."""
  high = tracking.high_res(model, out['cand'])
  gt = jnp.where(target, 10.0, -10.0)[:, None, None]                      # [P, 1, 1, S, S]
  n = high.shape[1]
  prompt = out['mask_prompt'][:, None] & (jnp.arange(n) == 0)[None]          # [P, n]
  return jnp.where(prompt[:, :, None, None, None], gt, high)


def object_terms(high, cand_iou, score, step_weight, target, config: official_loss.LossConfig):
  """One object's four loss terms summed over its frames and steps (weighted: 1 for the steps
  that ran), for ``num_objects`` = 1 (the caller divides by the batch's count).

  high [P, n, 3, S, S], cand_iou [P, n, 3], score [P, n], step_weight [P, n], target [P, S, S].
  """
  def one(masks, ious, sc, tgt):
    return official_loss.step_losses(masks[None], ious[None], sc[None, None], tgt[None], 1.0,
                                     config)
  per_step = jax.vmap(jax.vmap(one, in_axes=(0, 0, 0, None)))(high, cand_iou, score, target)
  return {k: jnp.sum(v * step_weight) for k, v in per_step.items()}


def combine(terms, valid, config: official_loss.LossConfig):
  """Per-object terms [B, K] -> the batch terms (sum over valid objects / their number) and the
  weighted total (``core_loss``)."""
  v = valid.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(v), 1.0)
  out = {k: jnp.sum(terms[k] * v) / n for k in official_loss.TERMS}
  out['core_loss'] = sum(out[k] * w for k, w in config.weights().items() if w != 0)
  return out


def tracked_iou(model, final, keep, targets, valid):
  """(intersection + 1) / (union + 1) of the final masks of the entries ``keep`` [P] (the
  frames that are not initial conditioning frames) over the valid objects of the batch:
  final [B, K, P, 4h, 4w], targets [B, K, P, S, S], valid [B, K]."""
  pred = tracking.high_res(model, final) > 0
  keep = (valid[:, :, None] & keep[None, None])[..., None, None]
  inter = jnp.sum(pred & targets & keep)
  union = jnp.sum((pred | targets) & keep)
  return (inter + 1.0) / (union + 1.0)


def terms_of(model, outs, targets, valid, cfg):
  """The batch's loss terms from ``unroll.unroll``'s outputs; also the targets of its entries
  [B, K, P, S, S]."""
  targets = targets[:, :, outs['frame']]
  weight = outs['step_valid'] & outs['valid'][None, None, :, None]            # [B, K, P, n]
  per_object = jax.vmap(jax.vmap(
      lambda o, tg, w: object_terms(candidates_high_res(model, o, tg), o['cand_iou'],
                                    o['score'], w.astype(jnp.float32), tg, cfg)))(
      {k: outs[k] for k in ('cand', 'cand_iou', 'score', 'mask_prompt')}, targets, weight)
  return combine(per_object, valid, cfg), targets


def loss_fn(params, batch_stats, batch, step, model, config):
  """The official multi-step loss of the batch's unrolled clips; plus metrics."""
  del batch_stats   # SAM 2 has no BatchNorm
  settings = unroll_settings(config)
  cfg = loss_config(config)
  key = jax.random.fold_in(jax.random.key(config.training.seed), step)
  plan = prompts.make_plan(jax.random.fold_in(key, 0), settings.prompts)
  b, k = batch['valid'].shape
  keys = jax.random.split(jax.random.fold_in(key, 1), b * k).reshape(b, k)
  labels = batch['labels'].astype(jnp.int32)
  targets = labels[:, None] == jnp.arange(1, k + 1)[None, :, None, None, None]   # [B, K, T, S, S]
  outs = unroll.unroll(model, {'params': params}, settings, plan, batch['frames'], targets, keys)
  terms, entry_targets = terms_of(model, outs, targets, batch['valid'], cfg)
  metrics = {'loss': terms['core_loss'], **{name: terms[name] for name in official_loss.TERMS},
             'iou': tracked_iou(model, outs['final'], outs['valid'] & ~outs['cond'],
                                entry_targets, batch['valid']),
             'points_input': plan.use_points.astype(jnp.float32),
             'cond_frames': jnp.sum(plan.init_valid).astype(jnp.float32),
             'corrected_frames': jnp.sum(plan.correct).astype(jnp.float32)}
  return terms['core_loss'], metrics
