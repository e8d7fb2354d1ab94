"""STM (Oh et al., ICCV 2019) evaluation network (seoungwugoh/STM ``model.py``).

Query encoder: ResNet-50 to res4 + 3x3 key (128) / value (512) projections.
Memory encoder: a second ResNet-50 whose first conv also sees the object's
mask and the other objects' mask (official ``conv1 + conv1_m + conv1_o``, one
5-channel conv here: the three are bias-free and summed before bn1), with
its own key/value projections; it runs once per object, so memory keys are
per object. Both trunks are ``backbone`` (official ``resnet50``; any name of
``nn.backbones``, e.g. ``resnet18`` or ``mobilenet_v2`` for small models
trained here), ImageNet-initialisable (``encoders``, ``training.backbone_init``). Decoder: official ``Decoder`` (convFM + ResBlock at 1/16, two
Refine stages to 1/4, a 2-way prediction conv, bilinear x4). The space-time
memory read is not part of the network: see ``memory.readout.read_dense``.
"""

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.nn import backbones
from memvos_jax.nn.layers import KeyValue, ResBlock, conv, upsample


class Refine(nn.Module):
  """Official ``Refine``: skip conv + ResBlock, add the x2 upsampled input, ResBlock."""
  planes: int = 256

  @nn.compact
  def __call__(self, skip, up):  # skip [1|K, 2h, 2w, Cs], up [K, h, w, planes]
    s = ResBlock(self.planes, name='ResFS')(conv(self.planes, 3, name='convFS')(skip))
    return ResBlock(self.planes, name='ResMM')(s + upsample(up, 2))


class Decoder(nn.Module):
  """Official STM ``Decoder(256)``: (readout ++ query value) at 1/16 -> 2-way logits at 1/1."""
  dim: int = 256

  @nn.compact
  def __call__(self, r4, r3, r2):
    # r4 [K, h, w, 1024]; r3 [1|K, 2h, 2w, 512]; r2 [1|K, 4h, 4w, 256]
    m4 = ResBlock(self.dim, name='ResMM')(conv(self.dim, 3, name='convFM')(r4))
    m3 = Refine(self.dim, name='RF3')(r3, m4)                  # [K, 2h, 2w, dim]
    m2 = Refine(self.dim, name='RF2')(r2, m3)                  # [K, 4h, 4w, dim]
    p2 = conv(2, 3, name='pred2')(nn.relu(m2))                 # [K, 4h, 4w, 2]
    return upsample(p2, 4)                                     # [K, 16h, 16w, 2]


def memory_input(image, masks):
  """[H, W, 3], soft masks [K, H, W] -> the memory encoder's input [K, H, W, 5].

  Object k's input is (image, its mask, the sum of the other objects' masks
  clamped to [0, 1]), as the official ``memorize``.
  """
  k = masks.shape[0]
  others = jnp.einsum('ij,jhw->ihw', 1.0 - jnp.eye(k, dtype=masks.dtype), masks)
  return jnp.concatenate([
      jnp.broadcast_to(image, (k,) + image.shape),
      masks[..., None], jnp.clip(others, 0.0, 1.0)[..., None]], axis=-1)


class STM(nn.Module):
  """The entry points used by ``inference.stm`` (images are normalised and padded)."""
  # Backbones that ImageNet weights can initialise: encoder -> (variable path, network key).
  encoders = {'query': (('query_encoder',), 'backbone'),
              'memory': (('memory_encoder',), 'backbone')}
  backbone: str = 'resnet50'
  key_dim: int = 128
  value_dim: int = 512
  decoder_dim: int = 256

  def setup(self):
    self.query_encoder = backbones.build(self.backbone)
    self.memory_encoder = backbones.build(self.backbone)
    self.query_kv = KeyValue(self.key_dim, self.value_dim)
    self.memory_kv = KeyValue(self.key_dim, self.value_dim)
    self.decoder = Decoder(self.decoder_dim)

  def encode_query(self, image):
    """[B, H, W, 3] -> (key [B,h,w,Ck], value [B,h,w,Cv], r3 [B,2h,2w,C8], r2 [B,4h,4w,C4]).

    (C8, C4) = (512, 256) for ResNet-50 (``backbones.feature_dims``)."""
    r4, r3, r2 = self.query_encoder(image)
    k4, v4 = self.query_kv(r4)
    return k4, v4, r3, r2

  def encode_memory(self, image, masks):
    """[H, W, 3], soft masks [K, H, W] -> (keys [K, h, w, Ck], values [K, h, w, Cv]).

    One memory-encoder pass per object (``memory_input``).
    """
    r4, _, _ = self.memory_encoder(memory_input(image, masks))
    return self.memory_kv(r4)

  def decode(self, readout, query_value, r3, r2):
    """readout [K, h, w, Cv], query value [h, w, Cv], r3/r2 [1, ...] -> logits [K, H, W, 2]."""
    # readout ++ query value as channel blocks (layers.Conv): the query's half once, not K times.
    return self.decoder((readout, query_value[None]), r3, r2)

  def __call__(self, image, masks):
    """Initialisation path touching every parameter: image [1,H,W,3], masks [K,H,W]."""
    k4, v4, r3, r2 = self.encode_query(image)
    mk, mv = self.encode_memory(image[0], masks)
    return self.decode(mv, v4[0], r3, r2), k4, mk
