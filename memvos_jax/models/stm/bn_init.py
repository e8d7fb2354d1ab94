"""STM's BatchNorm statistics from data, for training from random initialisation.

The paper starts both encoders from ImageNet (frozen BatchNorm with its
statistics); from random weights the statistics are set from the first batch
(``training.bn_from_data``) by the shared walk of ``training.batchnorm``: the
query encoder sees every frame of the batch, the memory encoder every sample's
frame 0 with its ground-truth object masks (``modeling.memory_input``: frame,
object mask, other objects' mask), as frame 0 is memorised in training.
"""

import jax
import jax.numpy as jnp

from memvos_jax.inference.core import normalize
from memvos_jax.models.stm.modeling import memory_input
from memvos_jax.training import batchnorm


def calibrate(model, variables, batch, passes: int = 8):
  """A data batch (frames [N, T, H, W, 3] uint8, labels [N, T, H, W], valid [N, K]) -> variables."""
  frames, labels, valid = normalize(batch['frames']), batch['labels'], batch['valid']
  k = valid.shape[1]
  images = frames.reshape((-1,) + frames.shape[2:])                       # [N*T, H, W, 3]
  masks = (labels[:, 0, None] == jnp.arange(1, k + 1)[None, :, None, None])
  masks = (masks & valid[:, :, None, None]).astype(jnp.float32)            # [N, K, H, W]
  memory = jax.vmap(memory_input)(frames[:, 0], masks)                     # [N, K, H, W, 5]
  memory = memory.reshape((-1,) + memory.shape[2:])                        # [N*K, H, W, 5]

  def capture(variables):
    inter = {}
    for name, x in (('query_encoder', images), ('memory_encoder', memory)):
      _, out = model.apply(variables, x, method=lambda m, x, name=name: getattr(m, name)(x),
                           capture_intermediates=True, mutable=['intermediates'])
      inter[name] = out['intermediates'][name]
    return inter

  return batchnorm.calibrate(variables, capture, passes)
