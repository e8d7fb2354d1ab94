"""Shared test fixtures. Tests needing ../shared skip with a clear reason.

memvos_jax is imported from the venv (scripts/setup_env.sh installs the repo
editable), not through a sys.path entry. pytest puts this folder (tests/) on
sys.path, so tests import helpers such as ``conftest``, ``helpers`` and
``parity_runs`` by name.
"""

import functools
import importlib.util
import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
# The wall-clock limit of every child process a test starts: CI's own (90 min), never
# tighter, so that no outcome depends on the machine's load. A hang is ended sooner by
# the code under test itself (training's collective deadlines), not by the test.
CHILD_TIMEOUT_S = 5400
# "Fast compile": most of XLA's optimisations off (``jax_disable_most_optimizations``:
# LLVM at -O0 without its expensive passes; about half the compile time, slower
# programs), for plumbing checks (metrics rows, checkpoints, resume, processes, CLIs,
# one of our paths against another). Set in the environment of child processes
# (``child_env``) and, in-process, for tests marked ``fast_compile`` (below). Never for
# numbers compared with an official recording (the parity files) or with a run made in
# another setting, nor for tests whose cost is running rather than compiling.
# ``JAX_OPTIMIZATION_LEVEL=O0`` changes nothing on CPU: it is part of jit's cache key, so
# that a function compiled in this mode is never reused by an unmarked test (the
# persistent compilation cache keys the two modes apart by itself).
FAST_COMPILE = {'JAX_DISABLE_MOST_OPTIMIZATIONS': '1', 'JAX_OPTIMIZATION_LEVEL': 'O0'}
# One LLVM module per program. XLA's CPU compiler splits a large program into parts that it
# compiles on a thread pool; with every core busy (2 pytest workers on CI's 2 cores, and the
# processes they start) the parts never run side by side and the split is only extra work:
# about 8 % less compile CPU without it, measured alone (SAM 2's training step 38 -> 34 s;
# four unit-test files 99 -> 88 s), and the programs compute bit for bit the same (STCN's
# parity run and a training step). Set for this process before JAX starts its backend (jax
# reads XLA_FLAGS then), and for every child (``child_env``; other children inherit it).
SERIAL_CODEGEN = '--xla_cpu_parallel_codegen_split_count=1'
if SERIAL_CODEGEN not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {SERIAL_CODEGEN}".strip()


def child_env(cache=None, devices: int | None = None, **extra) -> dict:
  """os.environ for a ``train.py`` child: CPU, FAST_COMPILE, ``devices`` simulated
  devices, the persistent compilation cache ``cache`` (None: the session's), ``extra``."""
  flags = [SERIAL_CODEGEN] + ([f'--xla_force_host_platform_device_count={devices}']
                              if devices else [])
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=' '.join(flags), **FAST_COMPILE, **extra)
  if cache is not None:
    env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return env


def metric_rows(workdir) -> dict:
  """step -> (loss, global batch indices) of the last write of each step in metrics.jsonl."""
  out = {}
  for line in open(pathlib.Path(workdir) / 'metrics.jsonl'):
    r = json.loads(line)
    if 'loss' in r:
      out[r['step']] = (r['loss'], r['indices'])
  return out


def need_shared(*parts):
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'needs {path} (the shared fixtures beside the repo)')
  return path


def official_state(name: str) -> dict:
  """Fixture ``name``'s official-format state_dict, rebuilt by make_checkpoint (no torch)."""
  need_shared('fixtures', name, 'recipe.json')
  return _make_checkpoint().build_state(name)


@functools.cache
def _make_checkpoint():
  """../shared/fixtures/make_checkpoint.py, imported from its path (once)."""
  path = SHARED / 'fixtures' / 'make_checkpoint.py'
  spec = importlib.util.spec_from_file_location('make_checkpoint', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def official_npz(tmp_path_factory, name: str) -> pathlib.Path:
  """Fixture ``name`` written as an official-format .npz in a temporary folder."""
  import numpy as np
  state = official_state(name)
  out = tmp_path_factory.mktemp('ckpt') / f'{name}.npz'
  np.savez(out, **state)
  return out


@pytest.fixture(scope='session')
def stcn_npz(bike_runs):
  """The stcn_random fixture rebuilt as .npz (no torch; the file the STCN parity run loads)."""
  return bike_runs.checkpoint('stcn_random')


@pytest.fixture(scope='session')
def bike_runs(tmp_path_factory):
  """``bike_runs(model)``: the model's parity run on ../shared's bike clip, once per session.

  See tests/parity_runs.py (the runners) and tests/test_parity.py (the table).
  """
  import parity_runs
  return parity_runs.BikeRuns(tmp_path_factory)


# Scheduling under ``--dist loadfile`` (scripts/test.sh): each file is one unit of work for
# one pytest-xdist worker, except GROUPS, whose files share a session fixture worth
# computing once (the bike parity runs and STCN's knife edges: minutes on 2 cores) and so
# run together on one worker. Units are handed out in LONGEST_FIRST order (measured file
# totals, the longest first; xdist would otherwise sort them by their number of tests), so
# the long ones start early and the short files fill in beside them instead of one running
# alone at the end. (xdist's own ``loadgroup`` cannot do this with pytest 9: it renames
# items through ``item._nodeid``, which pytest no longer reads.)
GROUPS = {name: 'bike_parity' for name in (
    'test_parity.py', 'test_stcn_knife_edges.py', 'test_sam2_parity.py', 'test_stm_parity.py',
    'test_afb_urr_parity.py')}
LONGEST_FIRST = ('bike_parity', 'test_sam2_training.py', 'test_multiprocess.py',
                 'test_default_model.py', 'test_afb_urr_training.py', 'test_batch_clips.py',
                 'test_sam2_family.py', 'test_export.py',
                 'test_stm_training.py', 'test_afb_urr.py', 'test_notebook.py',
                 'test_train_learns.py', 'test_train_sharding.py', 'test_cli_video.py',
                 'test_eval_cli.py', 'test_sam2_units.py', 'test_sam2_official_api.py',
                 'test_train_step.py', 'test_bad_inputs.py', 'test_backbones.py',
                 'test_adaptive_bank.py', 'test_rpm_training.py', 'test_bf16.py')


def _unit(path: str) -> str:
  """The unit of work of a test file: its group, or the file itself."""
  name = pathlib.PurePath(path).name
  return GROUPS.get(name, name)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(_unit(item.path), len(rank)))   # stable within a unit


@pytest.hookimpl(optionalhook=True)   # a pytest-xdist hook (absent under -p no:xdist)
def pytest_xdist_make_scheduler(config, log):
  if config.getvalue('dist') != 'loadfile':
    return None
  from xdist.scheduler import LoadScopeScheduling

  class Units(LoadScopeScheduling):
    """loadfile with GROUPS merged and the collection order (LONGEST_FIRST) kept."""

    def _split_scope(self, nodeid: str) -> str:
      return _unit(nodeid.split('::', 1)[0])

  config.option.loadscopereorder = False
  return Units(config, log)


def set_fast_compile(on: bool) -> None:
  """FAST_COMPILE in this process from now on (``on``), or the defaults."""
  import jax
  jax.config.update('jax_disable_most_optimizations', on)
  jax.config.update('jax_optimization_level', 'O0' if on else 'UNKNOWN')


def pytest_runtest_setup(item):
  """FAST_COMPILE in-process for a test marked ``fast_compile`` (and the fixtures it sets
  up; mark a whole module when it shares module fixtures), the defaults for any other."""
  set_fast_compile(item.get_closest_marker('fast_compile') is not None)
