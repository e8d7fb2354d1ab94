"""The shared backbones by name: ResNets, MobileNetV2, EfficientNet-Lite0.

Every backbone maps an ImageNet-normalised image [B, H, W, Cin] to
(f16, f8, f4): stride-16 features for keys and values and the stride-8/4
skips for the decoder, with BatchNorm frozen (eval mode); built with
``stride2=True``, also the stride-2 features (f2, for decoders that refine at
1/2, as AFB-URR's). ``SPECS`` says for
each name how its torchvision-layout ImageNet checkpoint maps onto it
(``memvos_jax.convert.imagenet``): the classification head dropped by name,
the first convolution (whose extra input channels, e.g. a value encoder's
masks, keep their initialisation).
"""

import dataclasses

import flax.linen as nn

from memvos_jax.nn import efficientnet, mobilenet, resnet


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  dims: tuple[int, int, int]     # channels of (f16, f8, f4)
  head: tuple[str, ...]          # key prefixes of an ImageNet file the backbone does not use
  first_conv: str                # the stem convolution's weight key
  imagenet: str = ''             # the ImageNet file this architecture takes ('' none known)


_RESNET_HEAD = ('layer4.', 'fc.')
SPECS = {name: BackboneSpec(tuple(resnet.feature_dims(name)), _RESNET_HEAD, 'conv1.weight',
                            '' if '_w' in name else f'torchvision {name} IMAGENET1K_V1')
         for name in resnet.WIDTHS}
SPECS['mobilenet_v2'] = BackboneSpec(
    mobilenet.FEATURE_DIMS, ('features.18.', 'classifier.'), 'features.0.0.weight',
    'mobilenet_v2-b0353104.pth (torchvision IMAGENET1K_V1)')
SPECS['efficientnet_lite0'] = BackboneSpec(
    efficientnet.FEATURE_DIMS, ('_conv_head.', '_bn1.', '_fc.'), '_conv_stem.weight',
    'efficientnet-lite0-57934424.pth')


def names() -> tuple[str, ...]:
  return tuple(SPECS)


def build(arch: str, conv_bias: bool = False, **kw) -> nn.Module:
  """The backbone module ``arch`` (``conv_bias``: the official ResNet copies with biases;
  ``kw``: module keywords, e.g. ``name``, ``head``, ``stride2``)."""
  if arch == 'mobilenet_v2':
    return mobilenet.MobileNetV2(**kw)
  if arch == 'efficientnet_lite0':
    return efficientnet.EfficientNetLite0(**kw)
  if arch in resnet.WIDTHS:
    return resnet.ResNet(arch, conv_bias, **kw)
  raise ValueError(f'unknown backbone {arch!r} (known: {", ".join(SPECS)})')


def feature_dims(name: str) -> tuple[int, int, int]:
  """Channels of (f16, f8, f4)."""
  return SPECS[name].dims
