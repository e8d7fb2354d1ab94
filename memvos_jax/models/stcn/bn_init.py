"""Data-dependent BatchNorm statistics for training from random initialisation.

The official recipe starts from ImageNet backbones whose (frozen) BatchNorm
statistics normalise the activations. A random init has mean 0 / var 1
statistics, so the frozen-BN network is an unnormalised ResNet: badly
conditioned, Adam's first steps blow it up. This sets every BatchNorm's
running mean/var to the statistics of its input on a real batch (a few
passes, since each layer's input depends on the layers before), after which
they stay frozen as in the official training.
"""

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.inference.core import normalize

# BatchNorm name -> the conv that feeds it (nn/resnet.py naming).
_FEEDS = {'bn1': 'conv1', 'bn2': 'conv2', 'bn3': 'conv3', 'downsample_1': 'downsample_0'}


def _set_stats(stats, inter):
  """Walk batch_stats; replace each BN's mean/var by its feeding conv's output moments."""
  out = {}
  for name, sub in stats.items():
    if 'mean' in sub and 'var' in sub:
      feed = inter.get(_FEEDS.get(name, ''), {}).get('__call__')
      if feed is None:
        out[name] = sub
        continue
      x = feed[0].astype(jnp.float32)
      axes = tuple(range(x.ndim - 1))
      out[name] = {'mean': jnp.mean(x, axes), 'var': jnp.var(x, axes) + 1e-5}
    else:
      out[name] = _set_stats(sub, inter.get(name, {}))
  return out


def calibrate(model, variables, batch, passes: int = 8):
  """A data batch (frames [N, T, H, W, 3] uint8, labels [N, T, H, W], valid [N, K]) -> variables."""
  frames, labels, valid = normalize(batch['frames']), batch['labels'], batch['valid']
  k = valid.shape[1]
  images = frames.reshape((-1,) + frames.shape[2:])                       # [N*T, H, W, 3]
  masks = (labels[:, 0, None] == jnp.arange(1, k + 1)[None, :, None, None])
  masks = (masks & valid[:, :, None, None]).astype(jnp.float32)            # [N, K, H, W]

  @jax.jit
  def one_pass(variables):
    _, key_inter = model.apply(variables, images, method='encode_key',
                               capture_intermediates=True, mutable=['intermediates'])
    f16 = model.apply(variables, images[:1], method='encode_key')[2]
    _, val_inter = model.apply(variables, frames[0, 0], f16[0], masks[0], method='encode_value',
                               capture_intermediates=True, mutable=['intermediates'])
    inter = {'key': key_inter['intermediates']['key'],
             'value': val_inter['intermediates']['value']}
    stats = variables['batch_stats']
    new = {name: _set_stats(sub, inter.get(name, {})) for name, sub in stats.items()}
    return {**variables, 'batch_stats': new}

  for _ in range(passes):
    variables = one_pass(variables)
  return jax.tree.map(np.asarray, variables)
