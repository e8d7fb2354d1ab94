"""AFB-URR (Liang et al., NeurIPS 2020) evaluation network.

Query encoder: ResNet-50 to res4, returning r4 (1/16), r3, r2 and r1 (1/2,
after the stem's ReLU). Memory encoder: the same trunk whose stem adds
7x7 convolutions of the class mask and of its complement. One Key/Value
head (Ck=128, Cv=512) serves query and memory. Decoder: the URR decoder
(``memvos_jax.models.afb_urr.urr``). Background is a class like the objects: the
memory holds one bank per class and the decoder runs once per class. The
memory itself (adaptive feature bank) is ``memvos_jax.memory.adaptive``.
Inputs are ImageNet-normalised here (the official encoders normalise
inside, from their ``mean``/``std`` buffers).

Not official, for training on a CPU (``configs/afb_urr.py:tiny`` / ``:small``):
``backbone`` picks another trunk of ``nn.backbones`` for both encoders
(resnet18/34/101, the reduced-width resnet18_w32/w48, mobilenet_v2,
efficientnet_lite0; the channels of r4/r3/r2/r1 follow it; a trunk that is not a
ResNet takes (image, mask, complement) as one 5-channel input, its stem's extra
channels fresh when ImageNet weights initialise it) and ``decoder_dims`` the URR
decoder's widths. The defaults are the official network, with unchanged variable
names.
"""

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.nn import backbones, resnet
from memvos_jax.nn.layers import KeyValue, conv
from memvos_jax.models.afb_urr.urr import URRDecoder

_BN = dict(use_running_average=True, momentum=0.9, epsilon=1e-5)   # frozen, as nn/resnet.py


class EncoderM(nn.Module):
  """Official ResNet memory encoder: image [1|O, H, W, 3], mask and its complement
  [O, H, W, 1] -> r4 [O, H/16, W/16, 1024] (ResNet-50).

  The official stem adds three bias-free 7x7 convolutions (image, mask, complement)
  before ``bn1``; the stages are torchvision's (``nn.resnet.layers``).
  """
  backbone: str = 'resnet50'

  @nn.compact
  def __call__(self, image, mask, other):
    width = resnet.WIDTHS[self.backbone]
    x = (conv(width, 7, 2, bias=False, name='conv1')(image)
         + conv(width, 7, 2, bias=False, name='conv1_m')(mask)
         + conv(width, 7, 2, bias=False, name='conv1_o')(other))
    r4, _, _ = resnet.layers(nn.relu(nn.BatchNorm(name='bn1', **_BN)(x)), self.backbone)
    return r4


class AFBURR(nn.Module):
  """The entry points used by the inference core (and training)."""
  # Trunks that ImageNet weights can initialise (``training.backbone_init``): encoder ->
  # (variable path, network key, modules of that path the file does not hold). The memory
  # encoder's mask convolutions keep their initialisation, as the official
  # ``resnet50(pretrained=True)`` copy leaves ``conv1_m`` / ``conv1_o`` fresh.
  encoders = {'query': (('encoder_q',), 'backbone'),
              'memory': (('encoder_m',), 'backbone', ('conv1_m', 'conv1_o'))}
  key_dim: int = 128
  value_dim: int = 512
  backbone: str = 'resnet50'
  # URR decoder widths (global, local); official (256, 32).
  decoder_dims: tuple[int, int] = (256, 32)

  def setup(self):
    # r4 [B,H/16,W/16,1024], r3 (512), r2 (256), r1 [B,H/2,W/2,64] for ResNet-50.
    self.encoder_q = backbones.build(self.backbone, stride2=True)
    # Other trunks than ResNets: one stem convolution over (image, mask, complement).
    self.encoder_m = (EncoderM(self.backbone) if self.backbone in resnet.WIDTHS
                      else backbones.build(self.backbone))
    self.keyval_r4 = KeyValue(self.key_dim, self.value_dim)
    g, l = self.decoder_dims
    self.decoder = URRDecoder(global_dim=g, local_dim=l)

  def encode_query(self, image):
    """[1, H, W, 3] -> (key [1,h,w,Ck], value [1,h,w,Cv], r3, r2, r1)."""
    r4, r3, r2, r1 = self.encoder_q(image)
    k4, v4 = self.keyval_r4(r4)
    return k4, v4, r3, r2, r1

  def encode_memory(self, image, masks):
    """Official ``memorize``: image [H, W, 3], class masks [O, H, W] -> keys, values [O, h, w, C].

    The complement is (1 - mask) clamped to [0, 1], taken after padding (so it is 1
    in the padded border, where every class's mask is 0).
    """
    m = masks[..., None]                                     # [O, H, W, 1]
    other = jnp.clip(1.0 - m, 0.0, 1.0)
    if isinstance(self.encoder_m, EncoderM):
      r4 = self.encoder_m(image[None], m, other)
    else:
      image = jnp.broadcast_to(image, m.shape[:3] + image.shape[-1:])
      r4, _, _ = self.encoder_m(jnp.concatenate([image, m, other], axis=-1))
    return self.keyval_r4(r4)

  def decode(self, readout, query_value, r3, r2, r1, valid=None):
    """readout [O, h, w, Cv], query value [h, w, Cv], skips [1, ...] -> fg probability [O, H, W].

    ``valid`` [O] bool (training: padded object slots): the classes that exist; the
    others take no part in the decoder's normalisation over classes (None: all).
    """
    # readout ++ query value as channel blocks (layers.Conv): the query's half once, not O times.
    return self.decoder((readout, query_value[None]), r3, r2, r1, valid)

  def __call__(self, image, masks):
    """Initialisation path touching every parameter: image [1,H,W,3], masks [O,H,W]."""
    k4, v4, r3, r2, r1 = self.encode_query(image)
    mk, mv = self.encode_memory(image[0], masks)
    return self.decode(mv, v4[0], r3, r2, r1), k4, mk
