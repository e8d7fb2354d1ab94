"""Data-dependent BatchNorm statistics for training from random initialisation.

The official recipes start from ImageNet backbones whose (frozen) BatchNorm
statistics normalise the activations. A random init has mean 0 / var 1
statistics, so the frozen-BN network is an unnormalised ResNet: badly
conditioned, Adam's first steps blow it up. ``calibrate`` sets every
BatchNorm's running mean/var to the statistics of its input on a real batch
(a few passes, since each layer's input depends on the layers before), after
which they stay frozen as in the official training. A model's own
``calibrate(model, variables, batch)`` (STCN's ``bn_init``, STM's ``bn_init``)
says which encoders see which inputs; this walks the statistics.
"""

import jax
import jax.numpy as jnp
import numpy as np

# BatchNorm name -> the conv that feeds it (nn/resnet.py naming).
FEEDS = {'bn1': 'conv1', 'bn2': 'conv2', 'bn3': 'conv3', 'downsample_1': 'downsample_0'}


def set_stats(stats, inter):
  """Walk ``batch_stats``; replace each BN's mean/var by its feeding conv's output moments.

  ``inter``: captured intermediates (``capture_intermediates=True``) laid out as
  ``stats``; a BN whose feeding conv is not there keeps its statistics.
  """
  out = {}
  for name, sub in stats.items():
    if 'mean' in sub and 'var' in sub:
      feed = inter.get(FEEDS.get(name, ''), {}).get('__call__')
      if feed is None:
        out[name] = sub
        continue
      x = feed[0].astype(jnp.float32)
      axes = tuple(range(x.ndim - 1))
      out[name] = {'mean': jnp.mean(x, axes), 'var': jnp.var(x, axes) + 1e-5}
    else:
      out[name] = set_stats(sub, inter.get(name, {}))
  return out


def calibrate(variables, capture, passes: int = 8):
  """``capture(variables)`` -> intermediates laid out as ``variables['batch_stats']``
  (the model's encoders run on a data batch); ``passes`` rounds of ``set_stats``.
  Returns the variables (numpy) with the new statistics."""

  @jax.jit
  def one_pass(variables):
    return {**variables, 'batch_stats': set_stats(variables['batch_stats'], capture(variables))}

  for _ in range(passes):
    variables = one_pass(variables)
  return jax.tree.map(np.asarray, variables)
