"""RPM-Net (Kim et al., WACV 2020): FCN-ResNet embedding + deformable matching module.

The layer table of the paper's supplement (Table 1) is the specification:
  1      7x7 conv, 32, stride 2                  [B, H/2,  W/2,  32]
  2      3x3 max pool, stride 2                  [B, H/4,  W/4,  32]
  3-101  ResNet stages layer1..layer4, each starting with stride 2
         (torchvision blocks from ``nn/resnet.py``) H/8, H/16, H/32, H/64
  102-105 3x3 transposed convs, stride 2, each added to the stage of the same
         resolution (layer3, layer2, layer1, the max pool): a 32-channel
         embedding at stride 4
  106-108 matching module on the concatenated embeddings of the target and the
         reference frame [B, H/4, W/4, 64]: 3x3 deformable convs with 32, 16, 2
         outputs (each with its 3x3 offset conv of 18 channels); the 2 channels
         are a displacement (dy, dx) per target location, in stride-4 pixels
  109    1x1 deformable conv taking its offsets from layer 108: samples the
         reference image (training) or the t-1 mask (inference), both
         averaged down to stride 4, at the displaced positions.
Layer 109 has an identity channel map (``deform_conv.deform_sample``), the only
weights that serve both its 3-channel (image) and its 1-channel (mask) use.
The supplement's Table 2 variants replace 106-108 with 1/3/5 standard 3x3
convs or 3 dilated convs (rates 3/6/9), keeping layer 109.

BatchNorm uses running statistics (frozen), like every backbone of the package.
Inputs are ImageNet-normalised frames whose sides are multiples of 64.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.models.rpm.deform_conv import DeformConv, deform_sample
from memvos_jax.nn.layers import conv, max_pool
from memvos_jax.nn.resnet import _BN, BasicBlock, Bottleneck

# Blocks per stage layer1..layer4 (torchvision); nn/resnet.py stops at layer3.
STAGES = {
    'resnet18': (BasicBlock, (2, 2, 2, 2)),
    'resnet34': (BasicBlock, (3, 4, 6, 3)),
    'resnet50': (Bottleneck, (3, 4, 6, 3)),
    'resnet101': (Bottleneck, (3, 4, 23, 3)),
}
STRIDE = 64           # input sides must be multiples of this (res5 is at H/64)
EMBED_STRIDE = 4

# Output channels of the matching layers, the last one being the (dy, dx) field.
MATCHING_WIDTHS = {1: (2,), 3: (32, 16, 2), 5: (32, 32, 16, 16, 2)}
MATCHING_KINDS = ('deformable', 'standard', 'dilated')


class FCNResNet(nn.Module):
  """Embedding module (layers 1-105): [B, H, W, 3] -> [B, H/4, W/4, width]."""
  depth: str = 'resnet101'
  width: int = 32       # stem (layer 1) and embedding (layer 105) channels
  planes: tuple[int, ...] = (64, 128, 256, 512)   # stage widths (Table 1; smaller for CPU)

  @nn.compact
  def __call__(self, x):
    block, counts = STAGES[self.depth]
    x = conv(self.width, 7, 2, bias=False, name='conv1')(x)
    x = nn.relu(nn.BatchNorm(name='bn1', **_BN)(x))                   # [B, H/2, W/2, 32]
    x = max_pool(x, 3, 2)      # [B, H/4, W/4, 32]
    self.sow('intermediates', 'pool', x)                              # layer 2
    skips = [x]
    for stage, (planes, n) in enumerate(zip(self.planes, counts)):
      for i in range(n):
        x = block(planes, 2 if i == 0 else 1, name=f'layer{stage + 1}_{i}')(x)
      skips.append(x)   # H/8, H/16, H/32, H/64
    y = skips.pop()
    for i, skip in enumerate(reversed(skips)):
      up = nn.ConvTranspose(skip.shape[-1], (3, 3), (2, 2), padding='SAME', name=f'up{i + 1}')
      y = up(y) + skip
      if skip is not skips[0]:
        y = nn.relu(y)
    return y                                                          # [B, H/4, W/4, 32]


class Matching(nn.Module):
  """Matching module (layers 106-108): concatenated embeddings -> (dy, dx) field."""
  kind: str = 'deformable'   # 'deformable' | 'standard' | 'dilated'
  num_layers: int = 3
  dilation: int = 1          # 'dilated' only

  @nn.compact
  def __call__(self, x):  # [B, h, w, 2E] -> [B, h, w, 2]
    if self.kind not in MATCHING_KINDS:
      raise ValueError(f'matching kind {self.kind!r} (known: {", ".join(MATCHING_KINDS)})')
    if self.num_layers not in MATCHING_WIDTHS:
      raise ValueError(f'matching num_layers {self.num_layers} (known: 1, 3, 5)')
    widths = MATCHING_WIDTHS[self.num_layers]
    d = self.dilation if self.kind == 'dilated' else 1
    for i, c in enumerate(widths):
      if self.kind == 'deformable':
        x = DeformConv(c, 3, name=f'match{i}')(x)
      else:
        x = nn.Conv(c, (3, 3), kernel_dilation=(d, d), padding=((d, d), (d, d)),
                    name=f'match{i}')(x)
      if i < len(widths) - 1:
        x = nn.relu(x)
    return x


def downsample(x, factor=EMBED_STRIDE):
  """Average pooling by ``factor``: [B, H, W, C] -> [B, H/f, W/f, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


class RPMNet(nn.Module):
  """Embedding + matching; ``__call__`` reconstructs the target from the reference.

  Attributes:
    backbone: 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101'.
    width: embedding channels (Table 1: 32).
    matching: 'deformable' (Table 1), 'standard' or 'dilated' (Table 2).
    matching_layers: 1, 3 or 5. dilation: rate of the 'dilated' matching.
    planes: ResNet stage widths (Table 1: 64, 128, 256, 512); the CPU
      configs halve or quarter them.
  """
  backbone: str = 'resnet101'
  width: int = 32
  planes: tuple[int, ...] = (64, 128, 256, 512)
  matching: str = 'deformable'
  matching_layers: int = 3
  dilation: int = 1

  def setup(self):
    self.embedding = FCNResNet(self.backbone, self.width, tuple(self.planes))
    self.matcher = Matching(self.matching, self.matching_layers, self.dilation)

  def embed(self, images):  # [B, H, W, 3] normalised -> [B, H/4, W/4, E]
    return self.embedding(images)

  def match(self, target_embed, reference_embed):  # -> [B, h, w, 2] (dy, dx)
    return self.matcher(jnp.concatenate([target_embed, reference_embed], axis=-1))

  def __call__(self, target, reference, source=None):
    """Layer 109 on ``source`` (default: the reference image).

    Args:
      target, reference: [B, H, W, 3] normalised frames (I_E1, I_E2).
      source: [B, H, W, C] or [B, H/4, W/4, C] (I_M2: image or mask); full
        resolution is averaged down to stride 4.
    Returns:
      ([B, H/4, W/4, C] the source warped onto the target, [B, H/4, W/4, 2] offsets).
    """
    b = target.shape[0]
    emb = self.embed(jnp.concatenate([target, reference], axis=0))
    offsets = self.match(emb[:b], emb[b:])
    source = reference if source is None else source
    if source.shape[1] != offsets.shape[1]:
      source = downsample(source, source.shape[1] // offsets.shape[1])
    return deform_sample(source, offsets), offsets


def zero_init_residuals(tree):
  """Zero the last BN scale of every residual block: blocks start as identity.

  BatchNorm is frozen, so training from scratch has no normalisation;
  identity blocks keep the deep variants stable (Goyal et al., 2017).
  """
  if not isinstance(tree, dict):
    return tree
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict) and k.startswith('layer') and 'bn1' in v:
      last = 'bn3' if 'bn3' in v else 'bn2'
      v = dict(v)
      v[last] = dict(v[last], scale=jnp.zeros_like(v[last]['scale']))
      out[k] = v
    else:
      out[k] = zero_init_residuals(v)
  return out


def init_variables(model: RPMNet, rng, size=(64, 64)):
  """Random variables, drawn with numpy from the abstract tree (no compilation).

  Conv kernels: He normal (std sqrt(2/fan_in)); the last matching layer x0.1
  (small initial displacements); offset convs and biases zero; BatchNorm at
  identity, with the last BN of every residual block zeroed.
  """
  x = jax.ShapeDtypeStruct((1, size[0], size[1], 3), jnp.float32)
  shapes = jax.eval_shape(model.init, rng, x, x)
  seed = int(jax.random.randint(rng, (), 0, 2 ** 31 - 1))
  gen = np.random.default_rng(seed)
  last_match = f'match{len(MATCHING_WIDTHS[model.matching_layers]) - 1}'

  def draw(path, leaf):
    names = [getattr(p, 'key', '') for p in path]
    if names[-1] in ('bias', 'mean') or 'offset' in names:
      return np.zeros(leaf.shape, np.float32)
    if names[-1] in ('scale', 'var'):
      return np.ones(leaf.shape, np.float32)
    std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
    if last_match in names:
      std *= 0.1
    return (gen.standard_normal(leaf.shape) * std).astype(np.float32)

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  variables = dict(variables)
  variables['params'] = zero_init_residuals(variables['params'])
  return jax.tree.map(jnp.asarray, variables)
