"""ResNet-18/34/50 backbones cut at res4 (stride 16), torchvision layout.

``resnet18_w32`` and ``resnet18_w48`` are ResNet-18 with a base
width of 32 or 48 instead of 64 (stem w, stages w/2w/4w): not official,
for models trained from scratch on a CPU (``configs/default.py``).

Shared by every model. BatchNorm uses its running statistics (eval mode, as
all the official VOS codes freeze it), so the module is a pure function of its
variables. Stage names follow torchvision (``layer1``..``layer3``); converters
rename model-specific prefixes (e.g. STCN's ``res2``) onto them.
"""

from typing import Sequence

import flax.linen as nn

from memvos_jax.nn.layers import conv, max_pool

_BN = dict(use_running_average=True, momentum=0.9, epsilon=1e-5)


class BasicBlock(nn.Module):
  """torchvision BasicBlock (two 3x3 convs)."""
  planes: int
  stride: int = 1
  conv_bias: bool = False
  expansion = 1

  @nn.compact
  def __call__(self, x):
    out = conv(self.planes, 3, self.stride, bias=self.conv_bias, name='conv1')(x)
    out = nn.relu(nn.BatchNorm(name='bn1', **_BN)(out))
    out = conv(self.planes, 3, bias=self.conv_bias, name='conv2')(out)
    out = nn.BatchNorm(name='bn2', **_BN)(out)
    return nn.relu(out + _shortcut(self, x))


class Bottleneck(nn.Module):
  """torchvision Bottleneck (v1.5: the stride sits on the 3x3 conv)."""
  planes: int
  stride: int = 1
  conv_bias: bool = False
  expansion = 4

  @nn.compact
  def __call__(self, x):
    out = conv(self.planes, 1, bias=self.conv_bias, name='conv1')(x)
    out = nn.relu(nn.BatchNorm(name='bn1', **_BN)(out))
    out = conv(self.planes, 3, self.stride, bias=self.conv_bias, name='conv2')(out)
    out = nn.relu(nn.BatchNorm(name='bn2', **_BN)(out))
    out = conv(self.planes * 4, 1, bias=self.conv_bias, name='conv3')(out)
    out = nn.BatchNorm(name='bn3', **_BN)(out)
    return nn.relu(out + _shortcut(self, x))


def _shortcut(block, x):
  """Identity, or torchvision's ``downsample`` = Sequential(1x1 conv, BN)."""
  out_c = block.planes * block.expansion
  if block.stride == 1 and x.shape[-1] == out_c:
    return x
  y = conv(out_c, 1, block.stride, padding=0, bias=block.conv_bias,
           name='downsample_0')(x)
  return nn.BatchNorm(name='downsample_1', **_BN)(y)


_ARCH = {
    'resnet18': (BasicBlock, (2, 2, 2)),
    'resnet34': (BasicBlock, (3, 4, 6)),
    'resnet50': (Bottleneck, (3, 4, 6)),
    'resnet101': (Bottleneck, (3, 4, 23)),
}
# Reduced-width variants: name -> base width (the torchvision nets have 64).
WIDTHS = {'resnet18': 64, 'resnet34': 64, 'resnet50': 64, 'resnet101': 64,
          'resnet18_w32': 32, 'resnet18_w48': 48}
_ARCH.update({'resnet18_w32': _ARCH['resnet18'], 'resnet18_w48': _ARCH['resnet18']})


class ResNet(nn.Module):
  """ResNet stem + layer1..layer3; returns (f16, f8, f4), with ``stride2`` also the
  stem's output (stride 2, after its ReLU: AFB-URR's r1).

  Attributes:
    depth: 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101' | 'resnet18_w32|w48'.
    conv_bias: True for the official "mod_resnet" copies (STCN/STM value
      encoders), whose convolutions all carry a bias; False for torchvision.
  """
  depth: str = 'resnet50'
  conv_bias: bool = False
  stride2: bool = False

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin]
    width = WIDTHS[self.depth]
    x = conv(width, 7, 2, bias=self.conv_bias, name='conv1')(x)
    f2 = nn.relu(nn.BatchNorm(name='bn1', **_BN)(x))         # [B, H/2, W/2, width]
    f16, f8, f4 = layers(f2, self.depth, self.conv_bias)
    return (f16, f8, f4, f2) if self.stride2 else (f16, f8, f4)


def layers(x, depth: str, conv_bias: bool = False):
  """The stem's output [B, H/2, W/2, w] -> (f16, f8, f4): max pool, then torchvision's
  layer1..layer3, built inside the caller's compact scope (``ResNet``, and stems of
  their own around these stages, e.g. AFB-URR's memory encoder)."""
  block, blocks = _ARCH[depth]
  width = WIDTHS[depth]
  x = max_pool(x, 3, 2)  # 1/4
  feats = []
  for stage, (planes, n) in enumerate(zip((width, 2 * width, 4 * width), blocks)):
    for i in range(n):
      stride = 2 if (i == 0 and stage > 0) else 1
      x = block(planes, stride, conv_bias, name=f'layer{stage + 1}_{i}')(x)
    feats.append(x)
  f4, f8, f16 = feats   # [B,H/4,W/4,64|256] [B,H/8,W/8,128|512] [B,H/16,W/16,256|1024]
  return f16, f8, f4


def feature_dims(depth: str) -> Sequence[int]:
  """Channels of (f16, f8, f4) for a backbone depth."""
  block, _ = _ARCH[depth]
  w = WIDTHS[depth]
  return tuple(p * block.expansion for p in (4 * w, 2 * w, w))
