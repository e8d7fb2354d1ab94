"""STM checkpoint conversion: strict key checks, optional DataParallel prefix (needs ../shared)."""


import jax
import numpy as np
import pytest

from conftest import official_state
from memvos_jax.models.stm import convert as convert_stm
from memvos_jax.errors import CheckpointError


@pytest.fixture(scope='module')
def state():
  """The stm_random fixture's state_dict, keys with ``module.`` as released."""
  return official_state('stm_random')


def test_prefix_is_optional(state):
  assert all(k.startswith('module.') for k in state)
  a = convert_stm.convert(state, source='stm.pth')
  b = convert_stm.convert({k[len('module.'):]: v for k, v in state.items()}, source='stm.pth')
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  # The three first convs of the memory encoder become one 5-channel conv.
  k = a['params']['memory_encoder']['conv1']['kernel']
  assert k.shape == (7, 7, 5, 64)
  for channel, name in ((3, 'conv1_m'), (4, 'conv1_o')):
    torch_w = state[f'module.Encoder_M.{name}.weight'][:, 0]            # [64, 7, 7]
    np.testing.assert_array_equal(k[:, :, channel, :], torch_w.transpose(1, 2, 0))


def test_missing_and_unexpected_keys_are_listed(state):
  bad = dict(state)
  del bad['module.Decoder.pred2.bias']
  del bad['module.Encoder_M.conv1_o.weight']
  bad['module.Decoder.extra.weight'] = np.zeros((2, 2), np.float32)
  with pytest.raises(CheckpointError) as e:
    convert_stm.convert(bad, source='stm.pth')
  msg = str(e.value)
  assert msg.startswith('stm.pth: ')
  assert 'missing: Decoder.pred2.bias' in msg and 'Encoder_M.conv1_o.weight' in msg
  assert 'unexpected' in msg and 'Decoder.extra.weight' in msg


def test_mis_shaped_key_and_buffers(state):
  bad = dict(state)
  bad['module.KV_Q_r4.Key.weight'] = np.zeros((64, 1024, 3, 3), np.float32)
  bad['module.Encoder_Q.std'] = np.ones((1, 3, 1, 1), np.float32)
  del bad['module.Encoder_M.mean']
  with pytest.raises(CheckpointError) as e:
    convert_stm.convert(bad, source='stm.pth')
  msg = str(e.value)
  assert 'mis-shaped' in msg and 'KV_Q_r4.Key.weight (64, 1024, 3, 3)' in msg
  assert 'Encoder_Q.std' in msg and 'Encoder_M.mean' in msg
