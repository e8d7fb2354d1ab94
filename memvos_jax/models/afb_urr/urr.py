"""Uncertain-region refinement (AFB-URR): the decoder, the uncertainty map and the confidence loss.

Decoder (official ``Decoder`` of xmlyqing00/AFB-URR ``model/AFB_URR.py``):
matching result at 1/16 -> convFM, ResMM -> Refine with r3 (1/8) and r2
(1/4) -> pred2 (2 channels: bg/fg) -> bilinear x2. The rough fg probability
of every class is normalised over the classes; the uncertainty
exp(1 - top1/top2) then gates a local refinement from r1 (1/2): the
neighbourhood (7x7 average) of r1 weighted by the class's rough mask, the
7x7 local max of that mask as confidence. Classes are the batch axis.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from memvos_jax.nn.layers import ResBlock, avg_pool, conv, max_pool, upsample

LOCAL = 7


def uncertainty(probs, axis=0):
  """exp(1 - top1 / (top2 + 1e-8)) over ``axis`` (official ``calc_uncertainty``).

  probs: class probabilities (>= 2 classes along ``axis``). The axis is kept (size 1).
  """
  x = jnp.moveaxis(probs, axis, -1)
  top2, _ = jax.lax.top_k(x, 2)
  u = jnp.exp(1.0 - top2[..., 0] / (top2[..., 1] + 1e-8))
  return jnp.expand_dims(u, axis)


def confidence_loss(fg_probs, valid=None):
  """The official training term: fg_probs [B, O, H, W] (decoder outputs).

  softmax over classes, uncertainty map, its L2 norm over the image divided
  by sqrt(H*W), averaged over the batch (``AFB_URR.segment`` in training).
  ``valid`` [O] bool (None: all): classes outside it take no part (padded slots).
  """
  if valid is not None:
    fg_probs = jnp.where(valid[None, :, None, None], fg_probs, -jnp.inf)
  u = uncertainty(jax.nn.softmax(fg_probs, axis=1), axis=1)         # [B, 1, H, W]
  b, _, h, w = u.shape
  sq = jnp.sum(u.reshape(b, -1) ** 2, axis=1)                       # [B]
  # A frame without uncertainty (one class: a clip without objects) has norm 0, whose
  # sqrt has no gradient: 0 there, with a finite gradient (the official term's value).
  norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
  return jnp.mean(norm / math.sqrt(h * w))


class Refine(nn.Module):
  """Skip features (shared by the classes) + 2x upsampled decoder state, two ResBlocks."""
  planes: int = 256

  @nn.compact
  def __call__(self, f, pm):  # f [1, 2h, 2w, Cf], pm [O, h, w, planes]
    s = ResBlock(self.planes, name='ResFS')(conv(self.planes, 3, name='convFS')(f))
    return ResBlock(self.planes, name='ResMM')(s + upsample(pm, 2))


class URRDecoder(nn.Module):
  """Global decoder + uncertain-region local refinement -> fg probability per class."""
  global_dim: int = 256
  local_dim: int = 32

  @nn.compact
  def __call__(self, match, r3, r2, r1, valid=None):
    # match [O, h, w, 1024] (or channel blocks, see layers.Conv); r3 [1, 2h, 2w, 512];
    # r2 [1, 4h, 4w, 256]; r1 [1, 8h, 8w, 64]; valid [O] bool or None (every class).
    # An invalid class (a padded object slot) gets rough probability 0, so the classes
    # that exist see exactly the official decoder over them alone.
    p = ResBlock(self.global_dim, name='ResMM')(conv(self.global_dim, 3, name='convFM')(match))
    p = Refine(self.global_dim, name='RF3')(r3, p)                   # 1/8
    p = Refine(self.global_dim, name='RF2')(r2, p)                   # 1/4
    p = conv(2, 3, name='pred2')(nn.relu(p))
    p = upsample(p, 2)                                               # [O, 8h, 8w, 2] at 1/2

    rough = jax.nn.softmax(p, axis=-1)[..., 1]                       # [O, H2, W2]
    if valid is not None:
      rough = jnp.where(valid[:, None, None], rough, -jnp.inf)
    rough = jax.nn.softmax(rough, axis=0)                            # over classes
    unc = uncertainty(rough, axis=0)[0][..., None]                   # [H2, W2, 1]
    rough = rough[..., None]                                         # [O, H2, W2, 1]
    local = avg_pool(r1 * rough, LOCAL)                         # [O, H2, W2, C1]
    local = local / (avg_pool(rough, LOCAL) + 1e-8)
    conf = max_pool(rough, LOCAL, 1)                               # [O, H2, W2, 1]
    x = (r1, local)        # r1 ++ local as channel blocks: r1 [1, ...] convolved once
    q = ResBlock(self.local_dim, name='local_ResMM')(conv(self.local_dim, 3, name='local_convFM')(x))
    q = conf * conv(2, 3, name='local_pred2')(nn.relu(q))
    p = upsample(p + unc * q, 2)                                     # [O, H, W, 2]
    return jax.nn.softmax(p, axis=-1)[..., 1]                        # [O, H, W]
