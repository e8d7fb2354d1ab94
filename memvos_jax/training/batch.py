"""What every model's ``loss_fn`` starts from, and the training IoU monitor they all log.

``prepare`` casts the variables to ``training.compute_dtype``, normalises the
batch's uint8 frames and says whether the clip is unrolled with
``jax.lax.scan`` (``training.clip_loop``: 'auto' = a Python loop on CPU, where
XLA compiles a scan's backward convolutions as plain loops). ``object1_iou`` is
STCN's official monitor, which STM and AFB-URR log as well.
"""

import jax
import jax.numpy as jnp

from memvos_jax.inference.core import normalize   # uint8 frames -> ImageNet-normalised


def prepare(params, batch_stats, batch, config):
  """-> (variables in the compute dtype, frames [B, T, H, W, 3], labels [B, T, H, W] int32,
  use_scan)."""
  t = config.training
  dtype = jnp.bfloat16 if t.compute_dtype == 'bfloat16' else jnp.float32
  cast = lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
  variables = {'params': jax.tree.map(cast, params), 'batch_stats': jax.tree.map(cast, batch_stats)}
  frames = normalize(batch['frames'], dtype)
  labels = batch['labels'].astype(jnp.int32)
  use_scan = t.clip_loop == 'scan' or (t.clip_loop == 'auto' and jax.default_backend() != 'cpu')
  return variables, frames, labels, use_scan


def object1_iou(pred, labels, has):
  """(intersection + 1) / (union + 1) of object 1 over the batch.

  pred [B, T-1, H, W] predicted class ids, labels [B, T-1, H, W], has [B] (object 1 exists).
  """
  pred, gt, has = pred == 1, labels == 1, has[:, None, None, None]
  inter = jnp.sum(pred & gt & has)
  union = jnp.sum((pred | gt) & has)
  return (inter + 1.0) / (union + 1.0)
