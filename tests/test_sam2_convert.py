"""SAM 2 checkpoint conversion: the fixture's official-format state_dict, strictly (needs ../shared)."""


import jax
import numpy as np
import pytest

from conftest import official_state
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import CheckpointError
from memvos_jax.models.sam2 import SAM2, trunk_items
from memvos_jax.models.sam2.convert import convert, unwrap


@pytest.fixture(scope='module')
def state():
  return official_state('sam2_random')


@pytest.fixture(scope='module')
def npz(state, tmp_path_factory):
  path = tmp_path_factory.mktemp('sam2') / 'sam2.npz'
  np.savez(path, **state)
  return path


@pytest.fixture(scope='module')
def variables(npz):
  """The fixture converted once from its .npz (shared by the tests below)."""
  return convert(load_state_dict(str(npz)), SAM2(), source=str(npz))


def test_every_key_lands(state, variables):
  leaves = jax.tree_util.tree_leaves(variables)
  assert len(leaves) == len(state) == 471
  assert sum(x.size for x in leaves) == sum(v.size for v in state.values())
  p = variables['params']
  # Layouts: linear transposed, conv HWIO, transposed conv [2, 2, out, in], raw leaves as stored.
  np.testing.assert_array_equal(p['obj_ptr_proj']['layers_0']['kernel'],
                                state['obj_ptr_proj.layers.0.weight'].T)
  np.testing.assert_array_equal(
      p['sam_mask_decoder']['output_upscaling_0']['kernel'],
      state['sam_mask_decoder.output_upscaling.0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p['image_encoder']['trunk']['pos_embed'],
                                state['image_encoder.trunk.pos_embed'])
  np.testing.assert_array_equal(p['memory_encoder']['fuser_layers_1']['gamma'],
                                state['memory_encoder.fuser.layers.1.gamma'])


def test_release_wrapper_accepted(state):
  assert unwrap({'model': state}) is state and unwrap(state) is state
  with pytest.raises(CheckpointError, match='not a SAM 2 state_dict'):
    unwrap({'model': {'a': 1}})


@pytest.mark.parametrize('edit, words', [
    ('drop', 'missing'), ('extra', 'unexpected'), ('shape', 'shape')])
def test_strict(state, edit, words):
  bad = dict(state)
  if edit == 'drop':
    bad.pop('sam_mask_decoder.iou_token.weight')
  elif edit == 'extra':
    bad['sam_mask_decoder.bogus.weight'] = np.zeros((3, 3), np.float32)
  else:
    bad['no_obj_ptr'] = np.zeros((1, 128), np.float32)
  with pytest.raises(CheckpointError, match=words):
    convert(bad, SAM2(), source='bad.pt')


def test_wrong_size_refused(state):
  with pytest.raises(CheckpointError, match='mis-shaped|shape'):
    convert(state, SAM2(trunk=trunk_items('small')), source='tiny_as_small.pt')


def test_config_sizes_and_drivers():
  from configs.sam2 import get_config
  from memvos_jax import registry
  from memvos_jax.registry import build_model
  assert [get_config(s).network.size for s in ('t', 'small', 'b+', 'large')] == [
      'tiny', 'small', 'base_plus', 'large']
  with pytest.raises(ValueError):
    get_config('huge')
  config = get_config('tiny')
  with pytest.raises(AttributeError):
    config.inference.mem_evry = 3                      # locked
  for key in ('chunk', 'max_objects', 'memory_capacity', 'max_obj_ptrs_in_encoder'):
    assert key in config.inference                     # what eval.py / ClipSegmenter read
  model = build_model(get_config('large'))
  assert registry.of(model).name == 'sam2' and dict(model.trunk)['embed_dim'] == 144


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_orbax_folder(variables, tmp_path):
  """A converted checkpoint saved as orbax loads in the predictor, its config and eval.py."""
  from configs.sam2 import get_config
  from memvos_jax.convert.checkpoint import save_variables
  from memvos_jax.models.sam2.predictor import Sam2Predictor
  from memvos_jax.registry import build_model, load_variables
  folder = save_variables(str(tmp_path / 'orbax'), variables)
  same = lambda a, b: jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, a, b))
  pred = Sam2Predictor.from_checkpoint(folder, 'tiny')
  assert same(pred.params, variables)
  config = get_config('tiny')
  config.checkpoint = folder
  pred = Sam2Predictor.from_config(config)
  assert pred.settings.add_all_frames_to_correct_as_cond and pred.ring_size == 15
  assert same(pred.params, variables)
  assert same(load_variables(config, build_model(config)), variables)
  with pytest.raises(CheckpointError):                 # tiny weights, small network
    Sam2Predictor.from_checkpoint(folder, 'small')
