"""The STM-style refinement decoder, for any network with stride-16/8/4 features.

STCN uses it; STM and AFB-URR keep their official variants in their folders
(``models/stm/modeling.py``, ``models/afb_urr/urr.py``).

stride-16 readout -> ResBlock compress -> (x2 + skip f8) -> (x2 + skip f4)
-> 3x3 prediction conv -> bilinear x4 to input resolution. One logit map per
object (the objects are the batch axis; skips are broadcast over it).
"""

import flax.linen as nn

from memvos_jax.nn.layers import ResBlock, UpsampleBlock, conv, upsample


class Decoder(nn.Module):
  """STCN/STM decoder: (memory readout ++ query value) at 1/16 -> logits at 1/1."""
  compress_dim: int = 512
  mid_dims: tuple[int, int] = (256, 256)

  @nn.compact
  def __call__(self, f16, f8, f4):
    # f16 [K, h, w, C16] (or channel blocks, see layers.Conv); f8 [1|K, 2h, 2w, C8];
    # f4 [1|K, 4h, 4w, C4]
    x = ResBlock(self.compress_dim, name='compress')(f16)
    x = UpsampleBlock(self.compress_dim, self.mid_dims[0], name='up_16_8')(f8, x)
    x = UpsampleBlock(self.mid_dims[0], self.mid_dims[1], name='up_8_4')(f4, x)
    x = conv(1, 3, name='pred')(nn.relu(x))        # [K, 4h, 4w, 1]
    return upsample(x, 4)[..., 0]                  # [K, 16h, 16w]
