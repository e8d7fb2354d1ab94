"""SAM 2 in bfloat16 as the official predictor runs under ``torch.autocast``.

Which tensors are bfloat16 is checked against the map recorded from the
official SAM 2.1 code under ``torch.autocast('cpu', dtype=torch.bfloat16)``
(forward hooks on every module, sam2 2b90b9f, torch 2.14.1): the image
encoder's stride-16 features float32 (the top-down sum promotes the bf16
lateral), its stride-4/8 features bf16, the memory attention's output float32
(its residual stream meets float32 features), the memory encoder's output
bf16, the mask logits cast to float32. Masks against the official bf16 run:
``benchmarks/vs_official.py --model sam2 --dtype bfloat16`` (docs/parity.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import numpy_variables
from memvos_jax import registry
from memvos_jax.models.sam2 import SAM2, tracking
from memvos_jax.models.sam2 import memory_bank as mb
from memvos_jax.models.sam2.common import LayerNorm, autocast_variables, dense, gelu, sdpa
from memvos_jax.models.sam2.inference import Sam2StepSettings

pytestmark = pytest.mark.fast_compile
BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)


@pytest.fixture(scope='module')
def small():
  model = SAM2(image_size=256)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((256, 256, 3), jnp.uint8))
  def fill(name, shape, rng):
    return np.ones(shape, np.float32) if name == 'scale' else (
        rng.standard_normal(shape) * 0.05).astype(np.float32)
  return model, numpy_variables(shapes, fill)


def _leaves(tree):
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_autocast_casts_the_weights_of_linear_and_conv_layers_only(small):
  _, variables = small
  assert autocast_variables(variables, 'float32') is variables
  cast = _leaves(autocast_variables(variables, 'bfloat16'))
  layer_dirs = {p.rsplit('/', 1)[0] for p in cast if p.endswith('/kernel')}
  low = {p for p, a in cast.items() if a.dtype == BF16}
  want = {p for p in cast if p.rsplit('/', 1)[0] in layer_dirs
          and p.rsplit('/', 1)[1] in ('kernel', 'bias')}
  want.add('params/sam_prompt_encoder/pe_layer/positional_encoding_gaussian_matrix')
  assert low == want
  for kept in ('params/image_encoder/trunk/pos_embed', 'params/maskmem_tpos_enc',
               'params/image_encoder/trunk/blocks_0/norm1/scale',
               'params/memory_encoder/fuser_layers_0/gamma', 'params/no_obj_ptr'):
    assert cast[kept].dtype == F32, kept
  # The depthwise conv, the transposed convs and every Dense/Conv are among the cast.
  for layer in ('memory_encoder/fuser_layers_0/dwconv', 'sam_mask_decoder/output_upscaling_0',
                'image_encoder/trunk/patch_embed_proj', 'memory_attention/layers_0/linear1'):
    assert cast[f'params/{layer}/kernel'].dtype == BF16, layer


def test_the_dtypes_of_a_frame_follow_the_official_autocast_run(small):
  """Traced only (``jax.eval_shape``): which outputs are bf16, as recorded officially."""
  model, variables = small
  settings = Sam2StepSettings(dtype='bfloat16')
  low = autocast_variables(variables, 'bfloat16')
  image = jax.ShapeDtypeStruct((256, 256, 3), jnp.uint8)
  for params, want in ((variables, dict(s0=F32, s1=F32)), (low, dict(s0=BF16, s1=BF16))):
    feats = jax.eval_shape(lambda p, i: tracking.encode(model, p, i), params, image)
    assert feats['vision'].dtype == F32 and feats['self0'].dtype == F32
    assert {k: feats[k].dtype for k in want} == want

  feats = jax.eval_shape(lambda p, i: tracking.encode(model, p, i), low, image)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), feats)
  mask = jnp.zeros((256, 256), jnp.float32)
  out, maskmem = jax.eval_shape(
      lambda p: tracking.mask_prompt(model, p, settings, zeros, mask), low)
  assert maskmem.dtype == BF16                                  # stored in bf16, as official
  assert {k: out[k].dtype for k in ('low_res', 'score', 'obj_ptr')} == {
      'low_res': F32, 'score': F32, 'obj_ptr': F32}             # official .float() / promotion
  mem = mb.ObjectMemory(**{k: jnp.asarray(a) for k, a in mb.empty(
      1, 15, (16, 16), model.mem_dim, model.hidden_dim).items()})
  out, maskmem, mem2 = jax.eval_shape(
      lambda p: tracking.track(model, p, settings, zeros, mem, jnp.int32(1), 1, jnp.int32(4)),
      low)
  assert out['low_res'].dtype == F32 and maskmem.dtype == BF16
  assert jax.tree.map(lambda a: a.dtype, mem2) == jax.tree.map(lambda a: a.dtype, mem)


def test_bf16_layers_round_as_torch_cpu_kernels():
  """A Dense with bf16 weights takes and gives bf16; LayerNorm keeps its input dtype
  (float32 statistics); GELU rounds once; attention on bf16 q, k, v stays close to
  float32 attention on the same (rounded) values."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((64, 32)), jnp.float32)
  layer = dense(16)
  v32 = layer.init(jax.random.key(0), x)
  v16 = autocast_variables(v32)
  y16 = layer.apply(v16, x)
  assert y16.dtype == BF16
  ref = layer.apply(jax.tree.map(lambda a: a.astype(BF16).astype(F32), v32),
                    x.astype(BF16).astype(F32))
  np.testing.assert_allclose(np.asarray(y16, np.float32), ref, rtol=2 ** -7, atol=2 ** -7)
  assert not np.array_equal(np.asarray(y16, np.float32), ref)      # really rounded
  ln = LayerNorm(epsilon=1e-6)
  lv = ln.init(jax.random.key(1), x)
  assert ln.apply(lv, x).dtype == F32 and ln.apply(lv, x.astype(BF16)).dtype == BF16
  xb = x.astype(BF16)
  np.testing.assert_array_equal(gelu(xb), gelu(xb.astype(F32)).astype(BF16))
  q, k, v = (jnp.asarray(rng.standard_normal((40, 2, 8)), BF16) for _ in range(3))
  out = sdpa(q, k, v)
  assert out.dtype == BF16
  ref = sdpa(*(t.astype(F32) for t in (q, k, v)))
  np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=3e-2)


def test_sam2_takes_bfloat16_and_auto():
  settings = registry.get('sam2').make_settings(dtype='bfloat16')
  assert settings.dtype == 'bfloat16'
  with pytest.raises(ValueError, match="inference.dtype='float16'"):
    registry.get('sam2').make_settings(dtype='float16')
