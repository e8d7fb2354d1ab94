"""STCN (Cheng et al., NeurIPS 2021) evaluation network.

Key encoder: ResNet-50 to res4 + 3x3 key projection (Ck=64) + 3x3 key
compression (the query "value", 512 ch). Value encoder: ResNet-18 on
(image, object mask, other-objects mask) fused with the key features
(2 ResBlocks + CBAM), Cv=512. Decoder: the shared STM-style decoder.
The memory read is not part of the network: see ``memvos_jax.memory``.
"""

import flax.linen as nn
import jax.numpy as jnp

from memvos_jax.nn.decoder import Decoder
from memvos_jax.nn.layers import FeatureFusionBlock, conv
from memvos_jax.nn import backbones


class KeyEncoder(nn.Module):
  """Query/memory key path: backbone features, key projection and compression."""
  backbone: str = 'resnet50'
  key_dim: int = 64
  value_dim: int = 512

  @nn.compact
  def __call__(self, image):  # [B, H, W, 3] normalised
    f16, f8, f4 = backbones.build(self.backbone, name='key_encoder')(image)
    k16 = conv(self.key_dim, 3, name='key_proj')(f16)       # [B, h, w, Ck]
    f16_thin = conv(self.value_dim, 3, name='key_comp')(f16)  # [B, h, w, Cv]
    return k16, f16_thin, f16, f8, f4


class ValueEncoder(nn.Module):
  """Memory value path: ResNet-18(image ++ mask ++ others) fused with key f16."""
  backbone: str = 'resnet18'
  value_dim: int = 512

  @nn.compact
  def __call__(self, image, key_f16, masks):
    # image [H, W, 3]; key_f16 [h, w, C]; masks [K, H, W] soft object masks
    k = masks.shape[0]
    # "Other objects" mask: the sum of every other object's mask, [K, H, W].
    others = jnp.einsum('ij,jhw->ihw', 1.0 - jnp.eye(k, dtype=masks.dtype), masks)
    x = jnp.concatenate([
        jnp.broadcast_to(image, (k,) + image.shape),
        masks[..., None], others[..., None]], axis=-1)              # [K, H, W, 5]
    x, _, _ = backbones.build(self.backbone, conv_bias=True, name='backbone')(x)
    return FeatureFusionBlock(self.value_dim, name='fuser')(x, key_f16[None])  # [K, h, w, Cv]


class STCN(nn.Module):
  """The three entry points used by inference and training."""
  # Backbones that ImageNet weights can initialise: encoder -> (variable path, network key).
  encoders = {'key': (('key', 'key_encoder'), 'key_backbone'),
              'value': (('value', 'backbone'), 'value_backbone')}
  key_backbone: str = 'resnet50'
  value_backbone: str = 'resnet18'
  key_dim: int = 64
  value_dim: int = 512
  # Decoder widths (compress, up_16_8, up_8_4); official (512, 256, 256).
  decoder_dims: tuple[int, int, int] = (512, 256, 256)

  def setup(self):
    self.key = KeyEncoder(self.key_backbone, self.key_dim, self.value_dim)
    self.value = ValueEncoder(self.value_backbone, self.value_dim)
    c, m1, m2 = self.decoder_dims
    self.decoder = Decoder(compress_dim=c, mid_dims=(m1, m2))

  def encode_key(self, image):
    """[B, H, W, 3] -> (k16 [B,h,w,Ck], f16_thin [B,h,w,Cv], f16, f8, f4)."""
    return self.key(image)

  def encode_value(self, image, key_f16, masks):
    """[H, W, 3], [h, w, C16], [K, H, W] -> values [K, h, w, Cv]."""
    return self.value(image, key_f16, masks)

  def decode(self, readout, f16_thin, f8, f4):
    """readout [K, h, w, Cv], query f16_thin [h, w, Cv], f8/f4 [1, ...] -> logits [K, H, W]."""
    # readout ++ f16_thin as channel blocks: the query's half is convolved once, not K times.
    return self.decoder((readout, f16_thin[None]), f8, f4)

  def __call__(self, image, masks):
    """Initialisation path touching every parameter: image [1,H,W,3], masks [K,H,W]."""
    k16, f16_thin, f16, f8, f4 = self.encode_key(image)
    v = self.encode_value(image[0], f16[0], masks)
    return self.decode(v, f16_thin[0], f8, f4), k16
