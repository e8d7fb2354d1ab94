"""Soft aggregation of per-object probabilities (STM), with an object mask; its logits for training."""

import jax
import jax.numpy as jnp

_EPS = 1e-7
_MASKED = -1e4   # training: an absent object's logit (finite, so the loss ignores it)


def aggregate(prob, obj_valid=None):
  """Per-object foreground probabilities -> a distribution over (bg, objects).

  Args:
    prob: [K, H, W] independent sigmoid probabilities.
    obj_valid: optional [K] bool; invalid objects take no part (probability 0).
  Returns:
    [K+1, H, W]: softmax over logit(clamp(p)) of [prod(1-p), p_1..p_K], as the
    official ``aggregate(prob, keep_bg=True)``.
  """
  if obj_valid is not None:
    prob = jnp.where(obj_valid[:, None, None], prob, 0.0)
  bg = jnp.prod(1.0 - prob, axis=0, keepdims=True)
  new_prob = jnp.clip(jnp.concatenate([bg, prob], axis=0), _EPS, 1.0 - _EPS)
  logits = jnp.log(new_prob / (1.0 - new_prob))
  if obj_valid is not None:
    keep = jnp.concatenate([jnp.ones((1,), bool), obj_valid])
    logits = jnp.where(keep[:, None, None], logits, -jnp.inf)
  return jax.nn.softmax(logits, axis=0)


def aggregate_logits(prob, valid):
  """The training form of ``aggregate``: prob [K, H, W] sigmoid probabilities, valid [K]
  -> [K+1, H, W] logits log-odds(clamp([prod(1-p), p_1..p_K])), absent objects -1e4
  (official STCN ``aggregate_wbg`` before its softmax; STM's paper loss)."""
  prob = jnp.where(valid[:, None, None], prob, 0.0)
  bg = jnp.prod(1.0 - prob, axis=0, keepdims=True)
  p = jnp.clip(jnp.concatenate([bg, prob], axis=0), _EPS, 1.0 - _EPS)
  logits = jnp.log(p / (1.0 - p))
  keep = jnp.concatenate([jnp.ones((1,), bool), valid])
  return jnp.where(keep[:, None, None], logits, _MASKED)
