"""What MobileNetV2 and EfficientNet-Lite share: the inverted bottleneck, the output-
stride-16 schedule and the classifier head, each with the caller's module names (the
two ImageNet files name the same layers differently)."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.nn.layers import Pointwise, conv


def relu6(x):
  return jnp.clip(x, 0.0, 6.0)


def stride16_schedule(first_strides: Sequence[int], repeats: Sequence[int], head: bool):
  """Per block (stride, dilation), stem at stride 2: as the classifier (``head``), or with
  every stride-2 block past stride 16 run at stride 1 and dilation 2 (output stride 16)."""
  out, stride, dilation = [], 2, 1
  for s, n in zip(first_strides, repeats):
    for r in range(n):
      s_r = s if r == 0 else 1
      if s_r == 2 and stride == 16 and not head:
        s_r, dilation = 1, 2
      elif s_r == 2:
        stride *= 2
      out.append((s_r, dilation))
  return out


def inverted_bottleneck(x, out: int, kernel: int, stride: int, expand: int, dilation: int,
                        pads, bn: dict, names: Sequence[str]):
  """[1x1 expand + BN + ReLU6,] depthwise k x k + BN + ReLU6, 1x1 project + BN, residual.

  Called inside a module's compact ``__call__``. ``names``: (expand conv, its BN,
  depthwise conv, its BN, project conv, its BN); ``pads``: the depthwise padding
  (None: symmetric k // 2 * dilation). x [B, H, W, Cin] -> [B, H/s, W/s, out].
  """
  cin = x.shape[-1]
  hidden = cin * expand
  y = x
  if expand != 1:
    y = Pointwise(hidden, name=names[0])(y)
    y = relu6(nn.BatchNorm(name=names[1], **bn)(y))
  y = conv(hidden, kernel, stride, pads, bias=False, groups=hidden, dilation=dilation,
           name=names[2])(y)
  y = relu6(nn.BatchNorm(name=names[3], **bn)(y))
  y = Pointwise(out, name=names[4])(y)
  y = nn.BatchNorm(name=names[5], **bn)(y)
  return x + y if stride == 1 and cin == out else y


def classifier_head(x, bn: dict, names: Sequence[str], num_classes: int):
  """1x1 conv to 1280 + BN + ReLU6, global average, linear: [B, h, w, C] -> [B, classes].
  ``names``: (conv, BN, linear)."""
  x = Pointwise(1280, name=names[0])(x)
  x = relu6(nn.BatchNorm(name=names[1], **bn)(x))
  return nn.Dense(num_classes, name=names[2])(jnp.mean(x, axis=(1, 2)))
