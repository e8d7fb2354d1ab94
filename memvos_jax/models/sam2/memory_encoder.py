"""SAM 2 memory encoder: mask downsampler + pixel projection, ConvNeXt fuser, projection to mem_dim.

The caller applies the official mask transform first (binarise for prompted
frames or sigmoid, then ``* sigmoid_scale + sigmoid_bias``).
"""

import flax.linen as nn

from memvos_jax.models.sam2.common import DepthwiseConv, conv, dense, gelu, layer_norm_2d


class MaskDownSampler(nn.Module):
  """Conv(k3, s2, p1) + LayerNorm2d + GELU, repeated to stride 16, then a 1x1 conv (``encoder_i``)."""
  embed_dim: int = 256
  total_stride: int = 16

  @nn.compact
  def __call__(self, x):  # [..., S, S, 1] -> [..., S/16, S/16, embed_dim]
    cin, idx, s = 1, 0, 1
    while s < self.total_stride:
      cout = cin * 4
      x = conv(cout, (3, 3), f'encoder_{idx}', strides=(2, 2), padding=((1, 1), (1, 1)))(x)
      x = gelu(layer_norm_2d(f'encoder_{idx + 1}')(x))
      cin, idx, s = cout, idx + 3, s * 2
    return conv(self.embed_dim, (1, 1), f'encoder_{idx}')(x)


class CXBlock(nn.Module):
  """ConvNeXt block: depthwise 7x7, LayerNorm2d, MLP x4 with GELU, layer scale ``gamma``, residual."""
  grouped_dwconv: bool = False

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    y = DepthwiseConv(7, self.grouped_dwconv, name='dwconv')(x)
    y = layer_norm_2d('norm')(y)
    y = dense(dim, name='pwconv2')(gelu(dense(4 * dim, name='pwconv1')(y)))
    gamma = self.param('gamma', nn.initializers.constant(1e-6), (dim,))
    return x + gamma * y


class MemoryEncoder(nn.Module):
  out_dim: int = 64
  in_dim: int = 256
  num_fuser_layers: int = 2
  grouped_dwconv: bool = False   # DepthwiseConv.grouped (training)

  @nn.compact
  def __call__(self, pix_feat, mask_for_mem):
    """pix_feat [..., h, w, in_dim]; mask_for_mem [..., 16h, 16w] -> [..., h, w, out_dim]."""
    m = MaskDownSampler(self.in_dim, name='mask_downsampler')(mask_for_mem[..., None])
    x = conv(self.in_dim, (1, 1), 'pix_feat_proj')(pix_feat) + m
    for i in range(self.num_fuser_layers):
      x = CXBlock(self.grouped_dwconv, name=f'fuser_layers_{i}')(x)
    return conv(self.out_dim, (1, 1), 'out_proj')(x)
