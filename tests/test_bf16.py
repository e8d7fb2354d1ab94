"""The bfloat16 inference mode (``inference.dtype='bfloat16'``).

Convolutions and matmuls run in bfloat16 and the memory is stored in it;
affinities, softmax / top-k and the returned probabilities stay float32.
Its accuracy cost is measured on real video (benchmarks/README.md: the
default model's held-out J&F, float32 vs bf16); here: the mode really runs
in bf16, agrees with float32 on a trained model, and refuses where it is
not implemented; ``'auto'`` picks it where the machine has bf16 units.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import memvos_jax
from conftest import CHILD_TIMEOUT_S, need_shared
from helpers import random_clip, tiny_stcn
from memvos_jax import registry
from memvos_jax.data import video_folder
from memvos_jax.inference import core, dtypes
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.models import stcn
from memvos_jax.models.stcn import inference as stcn_core


def test_unknown_dtype_and_float32_only_models_are_refused():
  with pytest.raises(ValueError, match="inference.dtype='float16'"):
    stcn_core.InferenceSettings(dtype='float16')
  with pytest.raises(ValueError, match='RPM-Net runs in float32 only'):
    registry.get('rpm').make_settings(dtype='bfloat16')


@pytest.mark.parametrize('platform,flags,want', [
    ('cpu', {'avx2', 'avx512f', 'avx512_bf16'}, 'bfloat16'),   # AMD Zen 4, Intel Cooper Lake
    ('cpu', {'avx2', 'avx512f', 'amx_bf16', 'amx_tile'}, 'bfloat16'),   # Intel Sapphire Rapids
    ('cpu', {'avx2', 'avx512f'}, 'float32'),
    ('cpu', set(), 'float32'),
    ('gpu', set(), 'bfloat16'),
    ('tpu', set(), 'bfloat16')])
def test_auto_is_bf16_where_the_machine_has_bf16_units(monkeypatch, platform, flags, want):
  monkeypatch.setattr(dtypes, '_platform', lambda: platform)
  monkeypatch.setattr(dtypes, 'cpu_info', lambda: ('a CPU', frozenset(flags)))
  assert dtypes.auto_dtype() == want
  for name in ('stcn', 'stm', 'afb_urr', 'sam2', 'default'):   # resolved once, in the settings
    assert registry.get(name).make_settings(dtype='auto').dtype == want, name
  # no bf16 core: float32, no error
  assert registry.get('rpm').make_settings(dtype='auto').dtype == 'float32'


def test_training_loads_weights_without_the_bf16_flag(monkeypatch, tmp_path):
  """The oneDNN flag also changes float32 matmul rounding: loading weights for inference
  in bf16 asks for it, loading them to train (a fine-tuning checkpoint) never does."""
  from memvos_jax.convert.checkpoint import save_npz
  from memvos_jax.training import state
  calls = []
  monkeypatch.setattr(dtypes, 'bf16_kernels', lambda: calls.append('flag'))
  config = registry.config('stcn', 'tiny')
  model = registry.build_model(config)
  family = registry.get('stcn')
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), family.abstract_variables(model))
  with config.unlocked():
    config.checkpoint = save_npz(str(tmp_path / 'w.npz'), zeros)
    config.inference.dtype = 'bfloat16'
  state.init_variables(config, model, family)
  assert calls == []
  family.load_variables(config, model)
  assert calls == ['flag']


def test_auto_on_a_bf16_cpu_sets_the_onednn_flag_before_jax_starts():
  """In a fresh CPU process (JAX not started), a CPU with AVX-512-BF16: ``'auto'`` is decided
  without starting JAX's backend, and loading the weights adds the oneDNN flag first."""
  code = '''
import os
from memvos_jax import registry
from memvos_jax.inference import dtypes
dtypes.cpu_info = lambda: ('a CPU', frozenset({'avx512_bf16'}))
assert dtypes.auto_dtype() == 'bfloat16' and not dtypes._backend_started()
config = registry.config('default')
config.inference.dtype = 'auto'
registry.load_variables(config, registry.build_model(config))
assert dtypes._backend_started()
print(os.environ['XLA_FLAGS'])
'''
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                     env=dict(env, JAX_PLATFORMS='cpu'), timeout=CHILD_TIMEOUT_S)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.split() == [dtypes.ONEDNN_FLAG]


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_bf16_program_computes_in_bf16_and_returns_float32():
  model, variables = tiny_stcn((32, 48), 2)
  images, annotation, given = random_clip(3, (32, 48), 2)
  masks = {0: annotation[0]}
  seg = ClipSegmenter(stcn.FAMILY, model, variables, chunk=4, return_probs=True,
                      dtype='bfloat16')
  cast = seg.variables_for('bfloat16')
  kernels = [a for a in jax.tree.leaves(cast) if a.ndim == 4]
  assert kernels and all(a.dtype == jnp.bfloat16 for a in kernels)
  assert seg.variables_for('float32') is variables
  settings = seg.settings(2)
  state = registry.get('stcn').init_state(model, settings, 2, (32, 48))
  assert state.bank.keys.dtype == jnp.bfloat16 and state.bank.values.dtype == jnp.bfloat16
  got = {}
  seg.run([(0, images)], masks, 3, (32, 48), lambda i, ids, p: got.__setitem__(i, (ids, p)))
  assert got[1][1].dtype == np.float32
  np.testing.assert_allclose(got[1][1].sum(axis=0), 1.0, atol=1e-5)
  np.testing.assert_array_equal(got[0][0], annotation[0])   # the given frame is exact


@pytest.mark.slow
def test_bf16_agrees_with_float32_on_the_trained_default_model():
  """The shipped (trained) model on a real clip: masks nearly identical."""
  root = need_shared('data', 'davis2016_train')
  clip = video_folder.find_clip(str(root), 'boat')       # held out from training
  ann = video_folder.read_annotations(clip)
  n = 6
  frames = np.stack([video_folder.read_frame(p) for p in clip.frame_paths[:n]])
  out = {}
  for dtype in ('float32', 'bfloat16'):
    seg = memvos_jax.load(quiet=True, dtype=dtype, chunk=3)
    out[dtype] = seg.segment(frames, {0: ann.masks[0]})
  agree = [float(np.mean(a == b)) for a, b in zip(out['float32'], out['bfloat16'])]
  assert min(agree) >= 0.995, agree
