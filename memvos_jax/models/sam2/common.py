"""Small SAM 2 building blocks: torch-named linear/MLP/attention, fixed encodings, resize matrices.

Everything is NHWC / token-last. Matmuls use ``Precision.HIGHEST`` so that GPU
runs match the float32 official numbers as closely as CPU runs do.

bfloat16 is the official predictor's ``torch.autocast`` (``autocast_variables``):
the weights of the linear and convolution layers (and the prompt encoder's
Fourier matrix) are cast to bfloat16, and those layers compute in their
weights' dtype, casting their input (autocast's lower-precision ops); every
other op keeps its inputs' dtype, promoted as torch promotes (bf16 + f32 is
f32), so the residual streams that meet a float32 parameter stay float32, as in
the official run. ``nn.LayerNorm`` returns its input's dtype (statistics in
float32), ``LayerNorm2d`` computes its statistics in its input's dtype (it is
written with plain tensor ops), activations round once, and attention on
bfloat16 q, k, v takes its softmax in float32. Where torch's CPU kernels
round once and XLA's fast bfloat16 products (YNNPACK/oneDNN) would be lost,
products round to bfloat16 before their bias is added and before the softmax
(float32 accumulation there halves the bf16 speed-up); docs/parity.md gives
what this costs in agreement with the official bf16 run. With float32 weights
nothing here changes.
"""

from collections.abc import Mapping
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

PREC = jax.lax.Precision.HIGHEST
LOW = jnp.bfloat16
F32 = jnp.float32


def rounded(fn):
  """An elementwise function that computes a bfloat16 input in float32 and rounds once
  (torch's CPU kernels); float32 inputs as they are."""
  def apply(x):
    return fn(x.astype(F32)).astype(LOW) if x.dtype == LOW else fn(x)
  return apply


def _gelu(x):
  """torch's exact ``nn.GELU()``, in torch's own formula: x / 2 (1 + erf(x / sqrt 2)).

  Not ``jax.nn.gelu(approximate=False)``: its erfc is a polynomial whose Horner steps
  jax lowers to fused multiply-adds under ``jit`` but to multiply-then-add for
  ``jax.export`` (forward-compatible StableHLO has no ``fma``), so an exported SAM 2
  rounded differently from the same program under ``jit``. ``lax.erf`` is one
  ``chlo.erf`` either way: exported and in-library steps compute the same bits.
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * math.sqrt(0.5)))


gelu = rounded(_gelu)
sigmoid = rounded(jax.nn.sigmoid)


# What autocast casts: the leaves of the layers that run in their weights' dtype.
AUTOCAST_LEAVES = ('kernel', 'bias')
AUTOCAST_PARAMS = ('positional_encoding_gaussian_matrix',)


def autocast_promote(*args, dtype=None, inexact=True):
  """flax's ``promote_dtype`` for Dense/Conv, except that a bfloat16 kernel (the second
  argument) casts the input and bias to bfloat16: torch autocast's linear/convolution."""
  kernel = args[1]
  if kernel is not None and jnp.dtype(kernel.dtype) == LOW:
    return [None if a is None else jnp.asarray(a, LOW) for a in args]
  return nn.dtypes.promote_dtype(*args, dtype=dtype, inexact=inexact)


def autocast_variables(variables, dtype: str = 'bfloat16'):
  """SAM 2's weights for a ``dtype`` run: float32 as they are; bfloat16 as the official
  predictor under ``torch.autocast``: the kernels and biases of the linear and
  convolution layers, and the prompt encoder's Fourier matrix, in bfloat16; norms,
  embeddings, position tables and layer scales stay float32."""
  if dtype == 'float32':
    return variables

  def cast(tree):
    if not isinstance(tree, Mapping):
      return tree
    layer = 'kernel' in tree
    return {k: (v.astype(LOW) if (layer and k in AUTOCAST_LEAVES) or k in AUTOCAST_PARAMS
                else cast(v)) for k, v in tree.items()}

  return cast(variables)


def dense(features: int, name: str | None = None) -> nn.Dense:
  """torch ``nn.Linear`` (kernel = weight.T), in its kernel's dtype (``autocast_promote``)."""
  return nn.Dense(features, precision=PREC, promote_dtype=autocast_promote, name=name)


def conv(features: int, kernel_size, name: str | None = None, **kwargs) -> nn.Conv:
  """torch ``nn.Conv2d`` (NHWC), in its kernel's dtype (``autocast_promote``)."""
  return nn.Conv(features, kernel_size, precision=PREC, promote_dtype=autocast_promote,
                 name=name, **kwargs)


class LayerNorm(nn.LayerNorm):
  """flax ``LayerNorm`` that returns its input's dtype (float32 statistics), as torch's
  ``nn.LayerNorm`` under autocast; ``torch2d``: SAM 2's ``LayerNorm2d``, whose plain
  tensor ops compute the statistics of a bfloat16 input in bfloat16 and whose float32
  affine makes the output float32. Float32 inputs: flax's LayerNorm unchanged."""
  torch2d: bool = False

  def __call__(self, x):
    if x.dtype != LOW:
      return super().__call__(x)
    if not self.torch2d:
      return super().__call__(x).astype(LOW)
    u = jnp.mean(x, axis=-1, keepdims=True)
    d = x - u
    var = jnp.mean(d * d, axis=-1, keepdims=True)
    y = d / jnp.sqrt(var + self.epsilon)
    return self.get_variable('params', 'scale') * y + self.get_variable('params', 'bias')


def layer_norm(name: str | None = None, eps: float = 1e-5) -> LayerNorm:
  """torch ``nn.LayerNorm`` over the last axis (eps 1e-5; Hiera's 1e-6)."""
  return LayerNorm(epsilon=eps, name=name)


def layer_norm_2d(name: str | None = None) -> LayerNorm:
  """SAM 2 ``LayerNorm2d`` (eps 1e-6) over the channel (last) axis."""
  return LayerNorm(epsilon=1e-6, torch2d=True, name=name)



class MLP(nn.Module):
  """SAM 2 ``MLP``: ``num_layers`` linears named ``layers_i``, activation between them."""
  hidden_dim: int
  output_dim: int
  num_layers: int
  activation: str = 'relu'
  sigmoid_output: bool = False

  @nn.compact
  def __call__(self, x):
    act = gelu if self.activation == 'gelu' else jax.nn.relu
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      x = dense(self.output_dim if last else self.hidden_dim, name=f'layers_{i}')(x)
      if not last:
        x = act(x)
    return sigmoid(x) if self.sigmoid_output else x


class Embedding(nn.Module):
  """torch ``nn.Embedding``: a ``weight`` table [num, dim]."""
  num: int
  dim: int

  @nn.compact
  def __call__(self):
    return self.param('weight', nn.initializers.normal(1.0), (self.num, self.dim))


class DepthwiseConv(nn.Module):
  """torch ``Conv2d(dim, dim, k, padding=k // 2, groups=dim)``; kernel [k, k, 1, dim] as nn.Conv's.

  Written as k*k shifted multiply-adds (one fused loop): XLA:CPU's grouped
  convolution takes 62 ms on SAM 2's 64x64x256 map with a 7x7 kernel, this 3 ms.
  ``grouped``: one grouped convolution instead (training: k*k taps and their
  gradients make a graph ~50x larger to compile).
  """
  kernel_size: int = 7
  grouped: bool = False

  @nn.compact
  def __call__(self, x):  # [..., H, W, C] -> [..., H, W, C]
    k, dim = self.kernel_size, x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, k, 1, dim))
    bias = self.param('bias', nn.initializers.zeros, (dim,))
    h, w = x.shape[-3:-1]
    out_dtype = x.dtype
    if kernel.dtype == LOW:   # torch autocast: bf16 operands, float32 accumulation, one rounding
      x, kernel, bias, out_dtype = (x.astype(LOW).astype(F32), kernel.astype(F32),
                                    bias.astype(F32), LOW)
    if self.grouped:
      lead = x.shape[:-3]
      y = jax.lax.conv_general_dilated(
          x.reshape((-1, h, w, dim)), kernel, (1, 1), [(k // 2, k // 2)] * 2,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=dim, precision=PREC)
      return (y.reshape(lead + (h, w, dim)) + bias).astype(out_dtype)
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(k // 2, k // 2)] * 2 + [(0, 0)])
    out = bias
    for i in range(k):
      for j in range(k):
        out = out + xp[..., i:i + h, j:j + w, :] * kernel[i, j, 0]
    return out.astype(out_dtype)


class ConvTranspose2x2(nn.Module):
  """torch ``ConvTranspose2d(kernel_size=2, stride=2)``; kernel [2, 2, out, in]."""
  features: int

  @nn.compact
  def __call__(self, x):  # [..., h, w, Cin] -> [..., 2h, 2w, out]
    cin = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (2, 2, self.features, cin))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    low = kernel.dtype == LOW   # torch autocast: bf16 operands, f32 sums and bias, one rounding
    y = jnp.einsum('...hwc,aboc->...hawbo', x.astype(kernel.dtype), kernel, precision=PREC,
                   preferred_element_type=F32 if low else None)
    *lead, h, a, w, b, o = y.shape
    return (y.reshape(*lead, h * a, w * b, o) + bias).astype(kernel.dtype)


def sdpa(q, k, v, key_mask=None, q_chunk: int = 0):
  """Scaled dot-product attention over heads.

  q [..., Nq, nh, d], k [..., Nk, nh, d], v [..., Nk, nh, dv]; key_mask [..., Nk]
  bool (False keys are left out exactly, as if absent). Queries are processed in
  chunks of ``q_chunk`` (0: all at once) to bound the [Nq, Nk] logits.
  """
  scale = 1.0 / math.sqrt(q.shape[-1])

  def run(qc):
    if qc.ndim == 3 and qc.shape[1] == 1 and key_mask is None:
      # One head (SAM 2 memory attention): 2-D products, exp(s - max) @ v normalised
      # after the product (one pass less over the [q, k] scores; 1.8x on 4096x4096).
      s = _scores('qd,kd->qk', _query(qc[:, 0], scale), k[:, 0], scale)
      p = jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))
      o = _weighted('qk,kd->qd', p, v[:, 0]) / jnp.sum(p, -1, keepdims=True)
      return o[:, None].astype(v.dtype)
    # Heads first ([..., nh, N, d], explicit transposes): XLA:CPU runs the batched
    # products 2.3x faster than on token-major operands (Hiera-T global attention).
    heads = lambda t: jnp.swapaxes(t, -3, -2)
    s = _scores('...hqd,...hkd->...hqk', heads(_query(qc, scale)), heads(k), scale)
    if key_mask is not None:
      s = jnp.where(key_mask[..., None, None, :], s, -jnp.inf)
    p = jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))
    o = _weighted('...hqk,...hkd->...hqd', p, heads(v))
    return heads(o / jnp.sum(p, axis=-1)[..., None]).astype(v.dtype)

  nq = q.shape[-3]
  if not q_chunk or nq <= q_chunk or nq % q_chunk:
    return run(q)
  qs = jnp.moveaxis(q.reshape(*q.shape[:-3], nq // q_chunk, q_chunk, *q.shape[-2:]), -4, 0)
  out = jax.lax.map(run, qs)                               # [n, ..., chunk, nh, dv]
  out = jnp.moveaxis(out, 0, -4)
  return out.reshape(*out.shape[:-4], nq, *out.shape[-2:])


def _query(q, scale):
  """The query as ``_scores`` takes it: float32 scaled by 1/sqrt(d) before the product
  (once, outside any loop over keys); bfloat16 as it is (scaled after, in float32)."""
  return q if q.dtype == LOW else q * scale


def _scores(spec, q, k, scale):
  """q . k / sqrt(d) for ``_query(q)``: float32 as it comes; bfloat16 q, k: a bfloat16
  product (XLA's fast path), then scaled in float32 for the softmax."""
  s = jnp.einsum(spec, q, k, precision=PREC)
  return s.astype(F32) * scale if q.dtype == LOW else s


def _weighted(spec, p, v):
  """Unnormalised softmax weights (float32) times v; bfloat16 v: the weights in bfloat16
  (as torch's CPU attention on bf16 inputs), the product in bfloat16, then float32."""
  if v.dtype == LOW:
    return jnp.einsum(spec, p.astype(LOW), v, precision=PREC).astype(F32)
  return jnp.einsum(spec, p, v, precision=PREC)


def sdpa_blocked(q, k, v, key_mask, block: int, num_blocked: int | None = None):
  """``sdpa`` whose keys come in blocks of ``block`` (one memory frame each) plus a tail.

  The first ``num_blocked`` keys (a multiple of ``block``; default
  ``Nk // block * block``) form blocks, each wholly present or
  wholly absent (``key_mask`` is constant over a block); an absent block is
  skipped (``lax.cond``), so the cost follows the memories present, as in the
  official code that concatenates only those. The tail's keys are masked one
  by one. Exact softmax, accumulated online over blocks; each head as 2-D
  products. q [Nq, nh, d], k [Nk, nh, d], v [Nk, nh, dv], key_mask [Nk].
  """
  one_head = functools.partial(_blocked_head, key_mask=key_mask, block=block,
                               num_blocked=num_blocked)
  if q.shape[1] == 1:   # SAM 2's memory attention: plain matmuls (a batch of one is slower)
    return one_head(q[:, 0], k[:, 0], v[:, 0])[:, None]
  return jax.vmap(one_head, in_axes=1, out_axes=1)(q, k, v)


def _blocked_head(q, k, v, key_mask, block: int, num_blocked: int | None = None):
  """``sdpa_blocked`` for one head: q [Nq, d], k [Nk, d], v [Nk, dv] -> [Nq, dv]."""
  nq = q.shape[0]
  scale = 1.0 / math.sqrt(q.shape[-1])
  qs = _query(q, scale)
  nb = (k.shape[0] if num_blocked is None else num_blocked) // block

  def update(carry, kb, vb, mb=None):
    m, l, acc = carry                                   # [Nq], [Nq], [Nq, dv]
    s = _scores('qd,kd->qk', qs, kb, scale)
    if mb is not None:
      s = jnp.where(mb[None, :], s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=-1))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
    p = jnp.exp(s - m_safe[:, None])
    corr = jnp.exp(m - m_safe)
    l = l * corr + jnp.sum(p, axis=-1)
    acc = acc * corr[:, None] + _weighted('qk,kd->qd', p, vb)
    return m_new, l, acc

  acc_dtype = F32 if q.dtype == LOW else q.dtype
  carry = (jnp.full((nq,), -jnp.inf, acc_dtype), jnp.zeros((nq,), acc_dtype),
           jnp.zeros((nq, v.shape[-1]), acc_dtype))
  if nb:
    split = lambda t: t[:nb * block].reshape(nb, block, *t.shape[1:])

    def body(c, xs):
      kb, vb, present = xs
      return jax.lax.cond(present, lambda c: update(c, kb, vb), lambda c: c, c), None

    present = jnp.any(split(key_mask), axis=-1)         # [nb]
    carry, _ = jax.lax.scan(body, carry, (split(k), split(v), present))
  if k.shape[0] > nb * block:
    carry = update(carry, k[nb * block:], v[nb * block:], key_mask[nb * block:])
  _, l, acc = carry
  return (acc / l[:, None]).astype(v.dtype)


def sine_pe_2d(h: int, w: int, num_pos_feats: int, temperature: float = 10000.0) -> np.ndarray:
  """``PositionEmbeddingSine(num_pos_feats, normalize=True)`` of an h x w map: [h, w, num_pos_feats]."""
  npf = num_pos_feats // 2
  scale = 2 * math.pi
  y = np.arange(1, h + 1, dtype=np.float32)
  x = np.arange(1, w + 1, dtype=np.float32)
  y = y / (np.float32(h) + np.float32(1e-6)) * np.float32(scale)
  x = x / (np.float32(w) + np.float32(1e-6)) * np.float32(scale)
  dim_t = np.arange(npf, dtype=np.float32)
  dim_t = np.float32(temperature) ** (2 * (dim_t // 2) / np.float32(npf))

  def enc(p):  # [n] -> [n, npf], sin on even, cos on odd feature indices
    a = p[:, None] / dim_t
    out = np.empty_like(a)
    out[:, 0::2] = np.sin(a[:, 0::2])
    out[:, 1::2] = np.cos(a[:, 1::2])
    return out

  py, px = enc(y), enc(x)
  return np.concatenate([np.broadcast_to(py[:, None], (h, w, npf)),
                         np.broadcast_to(px[None, :], (h, w, npf))], axis=-1).astype(np.float32)


def sine_pe_1d(pos: jax.Array, dim: int, temperature: float = 10000.0) -> jax.Array:
  """``get_1d_sine_pe``: [...] positions -> [..., dim] (sin half, then cos half)."""
  pe_dim = dim // 2
  dim_t = jnp.arange(pe_dim, dtype=jnp.float32)
  dim_t = temperature ** (2 * (dim_t // 2) / pe_dim)
  a = pos[..., None] / dim_t
  return jnp.concatenate([jnp.sin(a), jnp.cos(a)], axis=-1)


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of torch bicubic (align_corners=False, A=-0.75, border clamp)."""
  a = -0.75
  scale = n_in / n_out
  m = np.zeros((n_out, n_in), np.float64)
  c1 = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1
  c2 = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  for i in range(n_out):
    src = scale * (i + 0.5) - 0.5
    i0 = math.floor(src)
    t = src - i0
    coeffs = (c2(t + 1), c1(t), c1(1 - t), c2(2 - t))
    for j, c in zip(range(i0 - 1, i0 + 3), coeffs):
      m[i, min(max(j, 0), n_in - 1)] += c
  return m.astype(np.float32)


def bilinear_aa_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of torch bilinear with ``antialias=True`` (align_corners=False)."""
  scale = n_in / n_out
  support = scale if scale >= 1.0 else 1.0
  inv = 1.0 / scale if scale >= 1.0 else 1.0
  m = np.zeros((n_out, n_in), np.float64)
  for i in range(n_out):
    center = scale * (i + 0.5)
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), n_in)
    w = np.array([max(0.0, 1.0 - abs((j - center + 0.5) * inv)) for j in range(lo, hi)])
    if w.sum() > 0:
      m[i, lo:hi] = w / w.sum()
  return m.astype(np.float32)


def resize_with(x: jax.Array, mh: np.ndarray, mw: np.ndarray) -> jax.Array:
  """Separable resize of x [..., H, W] with [oh, H] and [ow, W] matrices."""
  x = jnp.einsum('oh,...hw->...ow', jnp.asarray(mh, x.dtype), x, precision=PREC)
  return jnp.einsum('pw,...ow->...op', jnp.asarray(mw, x.dtype), x, precision=PREC)
