"""MobileNetV2 (Sandler et al. 2018) in torchvision's layout, as a VOS backbone.

Module names mirror torchvision's ``mobilenet_v2`` state_dict (``features.3.conv.1.0``
-> ``features_3/conv_1_0``), so its ImageNet file loads strictly
(``memvos_jax.convert.imagenet``). ReLU6, BatchNorm eps 1e-5 in eval mode (frozen
running statistics, as every VOS recipe freezes them).

As a backbone (``head=False``) it returns (f16, f8, f4): stride 16 with 320
channels (blocks 14-17, stride 32 in the classifier, run at stride 16 with
dilation 2, as DeepLab's output stride 16), the stride-8 (32 ch) and stride-4
(24 ch) features for the decoder; ``stride2=True`` adds the stride-2 features (16 ch,
after block 1) as a fourth output, for decoders that refine at 1/2 (AFB-URR's URR).
``features.18`` and ``classifier`` are the classification head: ``head=True`` adds
them (stride 32, ImageNet logits).
"""

import flax.linen as nn

from memvos_jax.nn.layers import conv
from memvos_jax.nn.mobile_blocks import (classifier_head, inverted_bottleneck, relu6,
                                         stride16_schedule)

_BN = dict(use_running_average=True, momentum=0.9, epsilon=1e-5)
# (expand ratio t, channels c, repeats n, first stride s): the paper's table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_DIMS = (320, 32, 24)       # (f16, f8, f4)
_F2, _F4, _F8 = 1, 3, 6            # the last block at stride 2, 4 and 8


class InvertedResidual(nn.Module):
  """torchvision ``InvertedResidual``: [1x1 expand,] 3x3 depthwise, 1x1 project."""
  out: int
  stride: int
  expand: int
  dilation: int = 1

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] -> [B, H/s, W/s, out]
    i = 1 if self.expand != 1 else 0      # torchvision numbers the layers of conv.*
    names = ('conv_0_0', 'conv_0_1', f'conv_{i}_0', f'conv_{i}_1', f'conv_{i + 1}',
             f'conv_{i + 2}')
    return inverted_bottleneck(x, self.out, 3, self.stride, self.expand, self.dilation,
                               None, _BN, names)


class MobileNetV2(nn.Module):
  """Backbone (f16, f8, f4), or with ``head`` the ImageNet classifier's logits."""
  head: bool = False
  num_classes: int = 1000
  stride2: bool = False      # also return the stride-2 features (16 ch)

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin] ImageNet-normalised
    x = conv(32, 3, 2, bias=False, name='features_0_0')(x)
    x = relu6(nn.BatchNorm(name='features_0_1', **_BN)(x))   # [B, H/2, W/2, 32]
    widths = [(t, c) for t, c, n, _ in _SETTINGS for _ in range(n)]
    schedule = stride16_schedule([s for *_, s in _SETTINGS], [n for _, _, n, _ in _SETTINGS],
                                 self.head)
    feats = {}
    for idx, ((t, c), (s, d)) in enumerate(zip(widths, schedule), start=1):
      x = feats[idx] = InvertedResidual(c, s, t, d, name=f'features_{idx}')(x)
    if not self.head:
      out = (x, feats[_F8], feats[_F4])  # [B,H/16,W/16,320] [B,H/8,W/8,32] [B,H/4,W/4,24]
      return out + (feats[_F2],) if self.stride2 else out   # + [B, H/2, W/2, 16]
    return classifier_head(x, _BN, ('features_18_0', 'features_18_1', 'classifier_1'),
                           self.num_classes)   # [B, classes]
