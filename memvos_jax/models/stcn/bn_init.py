"""Data-dependent BatchNorm statistics for training from random initialisation.

The official recipe starts from ImageNet backbones whose (frozen) BatchNorm
statistics normalise the activations; from random weights the statistics are
set from a real batch instead (``training.batchnorm``, shared with STM): the
key encoder sees every frame of the batch, the value encoder the first
sample's frame 0 with its ground-truth masks.
"""

import jax.numpy as jnp

from memvos_jax.inference.core import normalize
from memvos_jax.training import batchnorm


def calibrate(model, variables, batch, passes: int = 8):
  """A data batch (frames [N, T, H, W, 3] uint8, labels [N, T, H, W], valid [N, K]) -> variables."""
  frames, labels, valid = normalize(batch['frames']), batch['labels'], batch['valid']
  k = valid.shape[1]
  images = frames.reshape((-1,) + frames.shape[2:])                       # [N*T, H, W, 3]
  masks = (labels[:, 0, None] == jnp.arange(1, k + 1)[None, :, None, None])
  masks = (masks & valid[:, :, None, None]).astype(jnp.float32)            # [N, K, H, W]

  def capture(variables):
    _, key_inter = model.apply(variables, images, method='encode_key',
                               capture_intermediates=True, mutable=['intermediates'])
    f16 = model.apply(variables, images[:1], method='encode_key')[2]
    _, val_inter = model.apply(variables, frames[0, 0], f16[0], masks[0], method='encode_value',
                               capture_intermediates=True, mutable=['intermediates'])
    return {'key': key_inter['intermediates']['key'],
            'value': val_inter['intermediates']['value']}

  return batchnorm.calibrate(variables, capture, passes)
