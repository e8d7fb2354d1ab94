"""SAM 2 checkpoint conversion: the fixture's official-format state_dict, strictly (needs ../shared)."""

import sys

import jax
import numpy as np
import pytest

from conftest import SHARED, need_shared
from memvos_jax.convert.sam2 import convert
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import CheckpointError
from memvos_jax.models.sam2 import SAM2, trunk_items


@pytest.fixture(scope='module')
def state():
  need_shared('fixtures', 'sam2_random', 'recipe.json')
  sys.path.insert(0, str(SHARED / 'fixtures'))
  import make_checkpoint  # noqa: E402
  return make_checkpoint.build_state('sam2_random')


def test_every_key_lands(state, tmp_path):
  path = tmp_path / 'sam2.npz'
  np.savez(path, **state)
  variables = convert(load_state_dict(str(path)), SAM2(), source=str(path))
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
  variables = convert({'model': state}, SAM2())
  assert len(jax.tree_util.tree_leaves(variables)) == 471


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


def test_config_sizes_and_predictor(state, tmp_path):
  from configs.sam2 import get_config
  from memvos_jax.sam2_predictor import Sam2Predictor
  assert [get_config(s).size for s in ('t', 'small', 'b+', 'large')] == [
      'tiny', 'small', 'base_plus', 'large']
  with pytest.raises(ValueError):
    get_config('huge')
  config = get_config('tiny')
  with pytest.raises(AttributeError):
    config.inference.mem_evry = 3                      # locked
  path = tmp_path / 'sam2.npz'
  np.savez(path, **state)
  config.checkpoint = str(path)
  pred = Sam2Predictor.from_config(config)
  assert pred.settings.add_all_frames_to_correct_as_cond and pred.ring_size == 15
  assert len(jax.tree_util.tree_leaves(pred.params)) == 471
