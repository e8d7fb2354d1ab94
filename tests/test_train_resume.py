"""Resume is exact: SIGKILL after a checkpoint, restart with the same command, same
losses and data as an uninterrupted run; a corrupt newest checkpoint falls back."""

import json
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.training import checkpointing
from memvos_jax.training.state import TrainState

from conftest import CHILD_TIMEOUT_S, REPO, child_env, metric_rows

ARGS = ['--config.network.key_dim=16', '--config.network.value_dim=32',
        '--config.network.decoder_dims=(16,16,16)',
        '--config.training.crop_size=32', '--config.training.batch_size=2',
        '--config.training.num_steps=8', '--config.training.checkpoint_every=4',
        '--config.training.log_every=1', '--config.training.eval_every=0',
        '--config.training.progress=False', '--config.data.threads=0',
        '--config.training.init_rng=rbg']   # one init program: ~8 s of compiles, not ~40


def _cmd(workdir):
  return [sys.executable, str(REPO / 'train.py'), '--config', str(REPO / 'configs/stcn.py:tiny'),
          f'--workdir={workdir}', *ARGS]


def _env(cache):
  # A persistent compilation cache shared by the runs keeps the test short.
  return child_env(cache)


@pytest.mark.slow   # two training runs in subprocesses: ~100 s
def test_sigkill_and_restart_equals_an_uninterrupted_run(tmp_path):
  env = _env(tmp_path / 'cache')
  ref = subprocess.run(_cmd(tmp_path / 'ref'), capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=CHILD_TIMEOUT_S)
  assert ref.returncode == 0, ref.stderr[-3000:]
  assert 'embedded synthetic videos' in ref.stdout
  want = metric_rows(tmp_path / 'ref')
  assert sorted(want) == list(range(1, 9))
  # No sample repeated or skipped: global indices 0..15 in order.
  assert [i for s in range(1, 9) for i in want[s][1]] == list(range(16))

  work = tmp_path / 'killed'
  proc = subprocess.Popen(_cmd(work), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, env=env, cwd=REPO)
  try:
    for line in proc.stdout:
      if 'checkpoint saved' in line and line.rstrip().endswith('/4'):
        proc.send_signal(signal.SIGKILL)
        break
  finally:
    proc.wait(timeout=CHILD_TIMEOUT_S)
  assert proc.returncode == -signal.SIGKILL
  rerun = subprocess.run(_cmd(work), capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=CHILD_TIMEOUT_S)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert 'resumed from step 4' in rerun.stdout
  got = metric_rows(work)
  assert sorted(got) == list(range(1, 9))
  for s in range(1, 9):
    np.testing.assert_allclose(got[s][0], want[s][0], rtol=1e-6, err_msg=f'step {s}')
    assert got[s][1] == want[s][1], s


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
