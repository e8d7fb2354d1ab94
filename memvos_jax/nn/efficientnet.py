"""EfficientNet-Lite0 (TF's mobile EfficientNet: ReLU6, no squeeze-excite) as a backbone.

Module names mirror the PyTorch port's state_dict (lukemelas-style: ``_conv_stem``,
``_bn0``, ``_blocks.N._expand_conv|_depthwise_conv|_project_conv``, ``_bn0..2``,
``_conv_head``, ``_bn1``, ``_fc``), so its ImageNet file loads strictly. Convolutions
pad as TensorFlow's "SAME" (asymmetric for stride 2), BatchNorm eps 1e-3 in eval
mode. Its weights were trained on inputs scaled as (x - 127.5) / 128 (TF's lite
preprocessing); this module takes ImageNet-normalised input, like every backbone
here, and rescales it first.

As a backbone (``head=False``) it returns (f16, f8, f4): blocks 11-15 (stride 32
in the classifier) run at stride 16 with dilation 2 -> 320 channels; the stride-8
(40 ch, after block 4) and stride-4 (24 ch, after block 2) features; ``stride2=True``
adds the stride-2 features (16 ch, after block 0) as a fourth output. ``_conv_head``,
``_bn1`` and ``_fc`` are the classification head (``head=True``).
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from memvos_jax.nn.layers import conv
from memvos_jax.nn.mobile_blocks import (classifier_head, inverted_bottleneck, relu6,
                                         stride16_schedule)

_BN = dict(use_running_average=True, momentum=0.99, epsilon=1e-3)
# (expand ratio, kernel, first stride, channels, repeats): EfficientNet-B0's stages.
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
FEATURE_DIMS = (320, 40, 24)       # (f16, f8, f4)
_F2, _F4, _F8 = 0, 2, 4            # the last block at stride 2, 4 and 8
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0   # numpy: no backend at import
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


def _same(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
  """TensorFlow "SAME" padding of one axis: (before, after)."""
  eff = dilation * (k - 1) + 1
  total = max((-(-size // stride) - 1) * stride + eff - size, 0)
  return total // 2, total - total // 2


def _pads(x, k, stride, dilation=1):
  return (_same(x.shape[1], k, stride, dilation), _same(x.shape[2], k, stride, dilation))


class MBConv(nn.Module):
  """Mobile inverted bottleneck without squeeze-excite (the Lite block)."""
  out: int
  kernel: int
  stride: int
  expand: int
  dilation: int = 1

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] -> [B, H/s, W/s, out]
    names = ('_expand_conv', '_bn0', '_depthwise_conv', '_bn1', '_project_conv', '_bn2')
    return inverted_bottleneck(x, self.out, self.kernel, self.stride, self.expand,
                               self.dilation, _pads(x, self.kernel, self.stride, self.dilation),
                               _BN, names)


class EfficientNetLite0(nn.Module):
  """Backbone (f16, f8, f4), or with ``head`` the ImageNet classifier's logits."""
  head: bool = False
  num_classes: int = 1000
  stride2: bool = False      # also return the stride-2 features (16 ch)

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] ImageNet-normalised (extra channels passed as is)
    rgb = (x[..., :3] * _STD + _MEAN - 127.5) / 128.0          # TF lite's input scaling
    x = jnp.concatenate([rgb.astype(x.dtype), x[..., 3:]], axis=-1)
    x = conv(32, 3, 2, _pads(x, 3, 2), bias=False, name='_conv_stem')(x)
    x = relu6(nn.BatchNorm(name='_bn0', **_BN)(x))            # [B, H/2, W/2, 32]
    blocks = [(e, k, c) for e, k, _, c, n in _STAGES for _ in range(n)]
    schedule = stride16_schedule([s for _, _, s, _, _ in _STAGES], [n for *_, n in _STAGES],
                                 self.head)
    feats = {}
    for idx, ((e, k, c), (s, d)) in enumerate(zip(blocks, schedule)):
      x = feats[idx] = MBConv(c, k, s, e, d, name=f'_blocks_{idx}')(x)
    if not self.head:
      out = (x, feats[_F8], feats[_F4])  # [B,H/16,W/16,320] [B,H/8,W/8,40] [B,H/4,W/4,24]
      return out + (feats[_F2],) if self.stride2 else out   # + [B, H/2, W/2, 16]
    return classifier_head(x, _BN, ('_conv_head', '_bn1', '_fc'), self.num_classes)
