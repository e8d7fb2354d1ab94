"""AFB-URR's BatchNorm statistics from data, for training from random initialisation.

The official recipe starts both encoders from ImageNet's ResNet-50 with
frozen BatchNorm (``set_bn_eval``); from random weights the statistics are set
from the first batch (``training.bn_from_data``) by the shared walk of
``training.batchnorm``: the query encoder sees every frame of the batch, the
memory encoder every sample's frame 0 with its ground-truth class masks (the
background and the valid objects), as frame 0 is memorised in training. The
memory encoder's ``bn1`` (ResNet trunks) normalises the sum of its three stem
convolutions (image, mask, complement), so that sum is what it is calibrated on.
"""

import jax

from memvos_jax.inference.core import normalize
from memvos_jax.models.afb_urr.unroll import class_masks
from memvos_jax.training import batchnorm


def calibrate(model, variables, batch, passes: int = 8):
  """A data batch (frames [N, T, H, W, 3] uint8, labels [N, T, H, W], valid [N, K]) -> variables."""
  frames, labels, valid = normalize(batch['frames']), batch['labels'], batch['valid']
  images = frames.reshape((-1,) + frames.shape[2:])                       # [N*T, H, W, 3]
  masks, _ = jax.vmap(class_masks)(labels[:, 0], valid)                   # [N, O, H, W]

  def capture(variables):
    run = lambda method: lambda *x: model.apply(
        variables, *x, method=method, capture_intermediates=True,
        mutable=['intermediates'])[1]['intermediates']
    query = run('encode_query')(images)['encoder_q']
    memory = dict(jax.vmap(run('encode_memory'))(frames[:, 0], masks)['encoder_m'])
    if 'conv1_m' in memory:                                               # ResNet stem
      stem = sum(memory[name]['__call__'][0] for name in ('conv1', 'conv1_m', 'conv1_o'))
      memory['conv1'] = {'__call__': (stem,)}                              # what bn1 sees
    return {'encoder_q': query, 'encoder_m': memory}

  return batchnorm.calibrate(variables, capture, passes)
