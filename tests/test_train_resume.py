"""A corrupt newest checkpoint falls back to the previous one (with its data position).

That a restart resumes exactly (the same command in a workdir left by SIGKILL:
every loss, batch and parameter equal to the uninterrupted run's, bit for bit)
is test_multiprocess.py's, on the train.py runs it makes anyway."""

import json

import jax
import jax.numpy as jnp
import pytest

from memvos_jax.training import checkpointing
from memvos_jax.training.state import TrainState


def _state(x):
  return TrainState(step=jnp.asarray(x, jnp.int32), params={'w': jnp.full((3,), float(x))},
                    batch_stats={'m': jnp.zeros((2,))}, opt_state={'mu': jnp.full((3,), -x)})


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path):
  mngr = checkpointing.manager(str(tmp_path), keep=3)
  for step in (1, 2):
    checkpointing.save(mngr, _state(step), global_batch=4)
  # The data position, written beside the state: the step and the samples read.
  position = json.loads((tmp_path / 'checkpoints' / '1' / 'data' / 'metadata').read_text())
  assert position == {'next_step': 1, 'next_sample': 4, 'global_batch': 4, 'process_count': 1}
  # Corrupt the newest one: truncate every file of its training state.
  for f in (tmp_path / 'checkpoints' / '2' / 'train').rglob('*'):
    if f.is_file():
      f.write_bytes(b'')
  abstract = jax.eval_shape(lambda: _state(0))
  shard = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  shardings = jax.tree.map(lambda _: shard, abstract)
  with pytest.warns(UserWarning, match='checkpoints/2 cannot be restored'):
    state = checkpointing.restore(checkpointing.manager(str(tmp_path), keep=3), abstract,
                                  shardings)
  assert int(state.step) == 1 and float(state.params['w'][0]) == 1.0
  # A variables item is what eval.py reads (memvos_jax.convert.checkpoint.restore_variables).
  from memvos_jax.convert.checkpoint import restore_variables
  v = restore_variables(checkpointing.variables_path(str(tmp_path), 1))
  assert set(v) == {'params', 'batch_stats'}
