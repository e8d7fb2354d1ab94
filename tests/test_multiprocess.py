"""Two training processes (4 CPU devices each, gloo collectives) equal one with 8 devices.

Every run is ``train.py`` itself: one process with 8 devices, or two processes
on one machine (``--config.training.distributed=True`` with a coordinator on a
free localhost port, ``process_id`` 0 and 1), on the tiny config shrunk so a
run compiles in seconds with the persistent compilation cache the runs share.
Checked: losses and parameters (the tolerances of test_train_sharding.py),
that each process fed a disjoint half of every global batch, checkpoints
resumed by the other process count (data position included), a process
killed mid-save, a restart in a killed run's workdir resuming exactly (bit
for bit on one process count), and one-line errors for bad launches.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from memvos_jax.convert.checkpoint import restore_variables
from memvos_jax.configs.stcn import get_config
from memvos_jax.errors import InputError
from memvos_jax.training import checkpointing, config_check

from conftest import CHILD_TIMEOUT_S, REPO, child_env, metric_rows

pytestmark = pytest.mark.slow   # launches processes and trains: ~8 min on 2 CPU cores

STEPS = 4
ARGS = ['--config.network.key_dim=8', '--config.network.value_dim=16',
        '--config.network.decoder_dims=(16,16,16)', '--config.training.crop_size=32',
        '--config.training.num_frames=2', '--config.training.max_objects=1',
        '--config.training.batch_size=8', f'--config.training.num_steps={STEPS}',
        '--config.training.checkpoint_every=2', '--config.training.keep_checkpoints=5',
        '--config.training.log_every=1', '--config.training.eval_every=0',
        '--config.training.progress=False', '--config.data.threads=0',
        '--config.training.init_rng=rbg']   # one init program per device count: ~8 s, not ~40
LOSS_REL = PARAMS_REL = 1e-5     # as tests/test_train_sharding.py


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env(cache, devices: int):
  return child_env(cache, devices)


def _launch(workdir, cache, processes: int, extra=(), per_process=None, port=None):
  """Start ``processes`` train.py processes (8 devices in all); their logs go to workdir.log*."""
  workdir = pathlib.Path(workdir)
  port = port or _free_port()
  procs = []
  for i in range(processes):
    argv = [sys.executable, str(REPO / 'train.py'), '--config',
            str(REPO / 'configs/stcn.py:tiny'), f'--workdir={workdir}', *ARGS]
    if processes > 1:
      argv += ['--config.training.distributed=True', '--config.training.num_processes=2',
               f'--config.training.coordinator=localhost:{port}',
               f'--config.training.process_id={i}', '--config.training.initialization_timeout=120']
    argv += [*extra, *(per_process or {}).get(i, ())]    # the last of a flag wins
    with open(f'{workdir}.log{i}', 'w') as out:
      procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True,
                                    cwd=REPO, env=_env(cache, 8 // processes)))
  return procs


def _finish(procs, workdir, timeout=CHILD_TIMEOUT_S):
  """Wait for all (killing any left at the timeout); -> [(returncode, log text)]."""
  deadline = time.time() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(1, deadline - time.time()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return [(p.returncode, pathlib.Path(f'{workdir}.log{i}').read_text())
          for i, p in enumerate(procs)]


def _train(workdir, cache, processes: int, extra=()):
  results = _finish(_launch(workdir, cache, processes, extra), workdir)
  for rc, log in results:
    assert rc == 0, log[-3000:]
  return results


def _fed(workdir, i: int, n: int):
  """step -> the sample indices process i of n fed."""
  path = pathlib.Path(workdir) / 'data_log' / f'process-{i}-of-{n}.jsonl'
  return {r['step']: r['indices'] for r in map(json.loads, open(path))}


def _variables(workdir, step: int) -> list:
  """The variables of a checkpoint as numpy leaves (written on any number of devices)."""
  path = checkpointing.variables_path(str(workdir), step)
  with ocp.StandardCheckpointer() as ckpt:
    meta = ckpt.metadata(path)
  meta = getattr(meta, 'item_metadata', meta)

  def plain(tree):   # orbax's tree metadata -> nested dicts of zeros (the restore target)
    if hasattr(tree, 'items'):
      return {k: plain(v) for k, v in tree.items()}
    return np.zeros(tree.shape, tree.dtype)
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(restore_variables(path, plain(meta)))]


def _compare_losses(got, want, steps):
  diffs = []
  for s in steps:
    diffs.append(abs(got[s][0] - want[s][0]))
    assert diffs[-1] <= LOSS_REL * abs(want[s][0]), (s, got[s][0], want[s][0])
    assert got[s][1] == want[s][1], s        # the same samples in the same order
  return max(diffs)


def _compare_params(got, want):
  assert len(got) == len(want)
  num = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(got, want)))
  den = np.sqrt(sum(np.sum(b ** 2) for b in want))
  assert num / den <= PARAMS_REL, num / den
  return max(float(np.max(np.abs(a - b))) for a, b in zip(got, want)), float(num / den)


def _copy_checkpoints(src, dst, upto: int):
  """src's checkpoints folder without the finished steps after ``upto`` (unfinished ones stay)."""
  shutil.copytree(pathlib.Path(src) / 'checkpoints', pathlib.Path(dst) / 'checkpoints',
                  ignore=lambda _, names: [n for n in names if n.isdigit() and int(n) > upto])


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """The 1-process reference run and a 2-process run killed while saving its last step."""
  base = tmp_path_factory.mktemp('multiprocess')
  cache = base / 'cache'
  t0 = time.time()
  _train(base / 'one', cache, 1)
  t1 = time.time()
  # Two processes; process 1 is SIGKILLed as soon as the save of the last step has
  # started (its temporary folder exists), then process 0.
  two = base / 'two'
  procs = _launch(two, cache, 2)
  killed = False
  try:
    while any(p.poll() is None for p in procs) and time.time() - t1 < CHILD_TIMEOUT_S:
      ckpts = two / 'checkpoints'
      if ckpts.is_dir() and any(d.name.startswith(f'{STEPS}.orbax-checkpoint-tmp')
                                for d in ckpts.iterdir()):
        procs[1].send_signal(signal.SIGKILL)
        killed = True
        time.sleep(1)
        procs[0].send_signal(signal.SIGKILL)
        break
      time.sleep(0.002)
  finally:
    results = _finish(procs, two)
  print(f'1 process: {t1 - t0:.0f}s, 2 processes: {time.time() - t1:.0f}s, '
        f'killed mid-save: {killed}')
  if not killed:     # the save finished before it was seen: a normal end
    assert [rc for rc, _ in results] == [0, 0], results[0][1][-3000:]
  return base, cache, killed


def test_two_processes_equal_one_process(runs):
  base, _, _ = runs
  want, got = metric_rows(base / 'one'), metric_rows(base / 'two')
  assert sorted(want) == sorted(got) == list(range(1, STEPS + 1))
  loss_diff = _compare_losses(got, want, range(1, STEPS + 1))
  param_diff, param_rel = _compare_params(_variables(base / 'two', 2),
                                          _variables(base / 'one', 2))
  print(f'losses: max abs diff {loss_diff:.3g}; parameters after 2 steps: '
        f'max abs diff {param_diff:.3g}, relative {param_rel:.3g}')
  # Each process fed its own contiguous half of every global batch, nothing else.
  halves = [_fed(base / 'two', i, 2) for i in (0, 1)]
  one = _fed(base / 'one', 0, 1)
  for s in range(1, STEPS + 1):
    assert not set(halves[0][s]) & set(halves[1][s]), s
    assert halves[0][s] + halves[1][s] == one[s] == want[s][1], s
  assert [i for s in range(1, STEPS + 1) for i in one[s]] == list(range(8 * STEPS))
  # Process 0 alone writes the metrics and the checkpoint's data position.
  assert len(list((base / 'two' / 'tensorboard').iterdir())) == 1
  position = json.loads((base / 'two' / 'checkpoints' / '2' / 'data' / 'metadata').read_text())
  assert position == {'next_step': 2, 'next_sample': 16, 'global_batch': 8, 'process_count': 2}


def test_a_process_killed_mid_save_leaves_the_last_checkpoint(runs):
  base, _, killed = runs
  folder = base / 'two' / 'checkpoints'
  listed = checkpointing.manager(str(base / 'two'), keep=5).all_steps()
  final = sorted(int(d.name) for d in folder.iterdir() if d.name.isdigit())
  unfinished = [d.name for d in folder.iterdir() if not d.name.isdigit()]
  print(f'killed mid-save: {killed}; listed {listed}, unfinished {unfinished}')
  assert sorted(listed) == final and 2 in listed
  if killed:
    assert STEPS not in listed or not unfinished   # the rename is the only way to be listed
  # The newest listed checkpoint reads back and equals the 1-process run at that step.
  _compare_params(_variables(base / 'two', max(listed)), _variables(base / 'one', max(listed)))


@pytest.mark.parametrize('writer,reader', [('two', 1), ('one', 2)])
def test_checkpoint_resumes_on_the_other_process_count(runs, writer, reader):
  base, cache, _ = runs
  work = base / f'{writer}_to_{reader}'
  _copy_checkpoints(base / writer, work, 2)    # from 'two': with the killed save's folder
  results = _train(work, cache, reader)
  assert 'resumed from step 2' in results[0][1]
  want, got = metric_rows(base / 'one'), metric_rows(work)
  assert sorted(got) == list(range(3, STEPS + 1))
  loss_diff = _compare_losses(got, want, range(3, STEPS + 1))
  param_diff, param_rel = _compare_params(_variables(work, STEPS), _variables(base / 'one', STEPS))
  print(f'{writer} -> {reader} process(es): losses max abs diff {loss_diff:.3g}; final '
        f'parameters max abs diff {param_diff:.3g}, relative {param_rel:.3g}')
  if reader == 2:
    halves = [_fed(work, i, 2) for i in (0, 1)]
    for s in range(3, STEPS + 1):
      assert halves[0][s] + halves[1][s] == want[s][1], s


def test_a_restart_in_the_killed_workdir_resumes_exactly(runs):
  """The 1-process run as SIGKILL would leave it after logging step 3 (metrics rows 1-3,
  checkpoints up to step 2): the same command, in the same workdir, resumes from step 2,
  and every loss, batch and parameter of steps 3-4 equals the uninterrupted run's, bit for
  bit (one process count: nothing may differ). A real SIGKILL (mid-save) is the fixture's."""
  base, cache, _ = runs
  work = base / 'one_again'
  shutil.copytree(base / 'one', work, ignore=shutil.ignore_patterns('checkpoints'))
  _copy_checkpoints(base / 'one', work, 2)
  rows = [line for line in open(base / 'one' / 'metrics.jsonl')
          if json.loads(line).get('step', 0) <= 3]
  (work / 'metrics.jsonl').write_text(''.join(rows))
  (rc, log), = _train(work, cache, 1)
  assert 'resumed from step 2' in log
  written = [json.loads(line) for line in open(work / 'metrics.jsonl')]
  # Step 3 twice (the killed run's row, then the rerun's), step 4 once: it ran again.
  assert [r['step'] for r in written if 'loss' in r] == [1, 2, 3, 3, 4]
  want, got = metric_rows(base / 'one'), metric_rows(work)
  assert got == want
  for a, b in zip(_variables(work, STEPS), _variables(base / 'one', STEPS)):
    np.testing.assert_array_equal(a, b)


def test_launch_settings_are_checked_before_connecting():
  config = get_config('tiny')
  with config.unlocked():
    config.training.process_id = 1
  with pytest.raises(InputError, match='training.process_id: is set but training.distributed'):
    config_check.check_launch(config)
  with config.unlocked():
    config.training.distributed = True
    config.training.num_processes = 1
  with pytest.raises(InputError, match=r'training.process_id: 1 is not one of 0..0'):
    config_check.check_launch(config)
  with config.unlocked():
    config.training.num_processes = 2
    config.training.coordinator = 'localhost'
  with pytest.raises(InputError, match="training.coordinator: 'localhost' is not host:port"):
    config_check.check_launch(config)
  with config.unlocked():
    config.training.coordinator = 'localhost:1234'
  config_check.check_launch(config)       # batch 4 over 2 processes


def _error_line(log: str) -> str:
  """The one ``error:`` line of a failed launch (no traceback)."""
  assert 'Traceback' not in log, log[-3000:]
  errors = [l for l in log.splitlines() if l.startswith('error: ')]
  assert len(errors) == 1, log[-3000:]
  return errors[0]


def test_bad_launches_fail_with_one_line(tmp_path, runs):
  cache = runs[1]
  # A process count that does not divide the global batch: refused before connecting.
  work = tmp_path / 'three'
  procs = _launch(work, cache, 1, extra=[
      '--config.training.distributed=True', '--config.training.num_processes=3',
      '--config.training.process_id=0', '--config.training.coordinator=localhost:1'])
  (rc, log), = _finish(procs, work)
  assert rc == 2
  assert 'config.training.batch_size: 8 is not divisible by the 3 processes' in _error_line(log)
  # Nobody at the coordinator's address (process 1), and a coordinator whose other
  # process never comes (process 0, on another port): both give up after 3 s.
  work = tmp_path / 'unreachable'
  t0 = time.time()
  procs = _launch(work, cache, 2, extra=['--config.training.initialization_timeout=3'],
                  per_process={1: [f'--config.training.coordinator=localhost:{_free_port()}']})
  (rc0, log0), (rc1, log1) = _finish(procs, work)
  print(f'both gave up after {time.time() - t0:.0f} s')   # reported, not asserted (load)
  assert rc0 == rc1 == 2
  assert 'not all 2 processes connected to this coordinator' in _error_line(log0)
  assert 'cannot reach the coordinator localhost:' in _error_line(log1)
  # Configs that differ between the processes: both name the key.
  work = tmp_path / 'mismatch'
  procs = _launch(work, cache, 2, per_process={1: ['--config.training.learning_rate=0.001']})
  for i, (rc, log) in enumerate(_finish(procs, work)):
    assert rc == 2
    line = _error_line(log)
    assert 'config: differs between the 2 processes: training.learning_rate' in line, line
    assert f'(process {i}: {0.0002 if i == 0 else 0.001})' in line, line


def test_a_skipped_collective_ends_every_process_with_one_line(tmp_path, runs):
  """Process 1 skips its first host-side exchange (MEMVOS_SKIP_COLLECTIVE): process 0 waits
  there, process 1 runs on into the next step's device collectives; each ends, within the
  collective timeout, with one line naming the step and the call instead of hanging."""
  work = tmp_path / 'skip'
  env = dict(os.environ, MEMVOS_SKIP_COLLECTIVE='gather_rows@1')
  saved = os.environ.copy()
  os.environ.update(env)          # _launch copies os.environ into the children
  try:
    t0 = time.time()
    procs = _launch(work, runs[1], 2,   # the 2-process programs, from the runs' cache
                    extra=['--config.training.collective_timeout=5'])
    results = _finish(procs, work)
  finally:
    os.environ.clear()
    os.environ.update(saved)
  lines = [_error_line(log) for _, log in results]
  assert all(rc == 1 for rc, _ in results), [rc for rc, _ in results]
  assert 'training stuck at step 1 in gather_rows' in lines[0], lines[0]
  assert 'training stuck at step' in lines[1], lines[1]
  print(f'both ended after {time.time() - t0:.0f} s:', *lines, sep='\n')
