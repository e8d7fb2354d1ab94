"""Strict checkpoint conversion and the orbax round trip."""

import numpy as np
import pytest

from memvos_jax.convert.checkpoint import restore_variables, save_variables
from memvos_jax.convert.common import flax_module_path
from memvos_jax.errors import CheckpointError, InputError
from memvos_jax.models.stcn import STCN
from memvos_jax.models.stcn.convert import abstract_variables, convert
from memvos_jax.registry import convert_file


def test_module_path_joins_indices():
  assert flax_module_path('key_encoder.layer2.0.downsample.1') == (
      'key_encoder', 'layer2_0', 'downsample_1')


@pytest.fixture(scope='module')
def state(stcn_npz):
  d = np.load(stcn_npz)
  return {k: d[k] for k in d.files}


def test_every_key_lands(state):
  variables = convert(state)
  conv = state['key_encoder.layer2.0.conv2.weight']          # [O, I, 3, 3]
  kernel = variables['params']['key']['key_encoder']['layer2_0']['conv2']['kernel']
  np.testing.assert_array_equal(kernel, conv.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(
      variables['batch_stats']['value']['backbone']['bn1']['var'],
      state['value_encoder.bn1.running_var'])
  lin = state['value_encoder.fuser.attention.ChannelGate.mlp.1.weight']
  np.testing.assert_array_equal(
      variables['params']['value']['fuser']['attention']['ChannelGate']['mlp_1']['kernel'], lin.T)


@pytest.mark.parametrize('edit, words', [
    (lambda s: s.pop('decoder.pred.bias'), ['1 missing', 'decoder.pred.bias']),
    (lambda s: s.pop('key_encoder.layer2.0.conv2.weight'), ['1 missing', 'key_encoder.layer2.0.conv2.weight']),
    (lambda s: s.pop('value_encoder.bn1.running_var'), ['1 missing', 'value_encoder.bn1.running_var']),
    (lambda s: s.__setitem__('decoder.extra.weight', np.zeros(3)), ['1 unexpected', 'decoder.extra.weight']),
    (lambda s: s.__setitem__('key_comp.bias', np.zeros(7)), ['mis-shaped', 'key_comp.bias']),
])
def test_wrong_keys_are_listed(state, edit, words):
  s = dict(state)
  edit(s)
  with pytest.raises(CheckpointError) as e:
    convert(s, source='ckpt.pth')
  msg = str(e.value)
  assert msg.startswith('ckpt.pth: ') and '\n' not in msg
  for w in words:
    assert w in msg
  assert 'params/' not in msg and 'batch_stats/' not in msg     # the checkpoint's own names
  if 'mis-shaped' in words:
    assert 'missing' not in msg                                 # reported once


def test_stage0_value_encoder_is_padded(state):
  s = dict(state)
  s['value_encoder.conv1.weight'] = s['value_encoder.conv1.weight'][:, :4]
  v = convert(s)
  k = v['params']['value']['backbone']['conv1']['kernel']
  assert k.shape[2] == 5 and not np.any(k[:, :, 4])


def test_missing_file_and_unknown_model(tmp_path):
  with pytest.raises(InputError, match='does not exist'):
    convert_file(str(tmp_path / 'nope.pth'), 'stcn')
  p = tmp_path / 'x.npz'
  np.savez(p, a=np.zeros(1))
  with pytest.raises(InputError, match='no converter'):
    convert_file(str(p), 'unknown')


def test_orbax_round_trip(state, tmp_path):
  variables = convert(state)
  path = save_variables(str(tmp_path / 'ckpt'), variables)
  import jax
  target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract_variables(STCN()))
  back = restore_variables(path, target)
  a, b = jax.tree.leaves(variables), jax.tree.leaves(back)
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, np.asarray(y))
