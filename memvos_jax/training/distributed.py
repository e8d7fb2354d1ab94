"""Several training processes: connecting them, checking they agree, gathering logs.

One JAX process per host (a TPU VM worker, a GPU node), or several on one
machine (tests: 2 CPU processes x 4 devices, gloo collectives, jax's CPU
default). ``initialize`` connects them with ``jax.distributed.initialize``
from ``config.training`` (``coordinator`` / ``num_processes`` /
``process_id``; unset ones are detected by jax on TPU pod slices, SLURM and
Open MPI). When the coordinator cannot be reached, or not every process
connects, jax aborts the process with a C++ stack trace once
``initialization_timeout`` has passed; a watchdog prints one line and exits
(code 2) at that time instead.

Once connected, ``check_same_config`` compares a hash of every config value
(two tiny all-gathers) and names the keys that differ, and ``agree`` turns a
bad input found on one process (a data folder missing on one host) into an
error on every process, not a hang in the next collective.
``compile_together`` compiles the training step ahead and meets the other
processes at a barrier of the distributed service before the first step:
CPU collectives (gloo) give up when the processes set up a new communicator
more than 30 s apart, and compile times differ (a persistent compilation
cache hit on one process only, a busy host).
"""

import hashlib
import json
import os
import sys
import threading

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from memvos_jax.errors import USAGE_EXIT, InputError

_PER_PROCESS = ('training.process_id',)   # the keys that may differ between processes
_MARGIN_S = 10       # jax's own deadline, after the watchdog's


def _kwargs(t) -> dict:
  out = {}
  if t.coordinator:
    out['coordinator_address'] = t.coordinator
  if t.num_processes:
    out['num_processes'] = t.num_processes
  if t.process_id >= 0:
    out['process_id'] = t.process_id
  return out


def _timeout_message(t) -> str:
  where = t.coordinator or '(detected by jax)'
  wait = f'within training.initialization_timeout={t.initialization_timeout}s'
  if t.process_id == 0:
    return (f'config.training.coordinator: not all {t.num_processes or "the"} processes '
            f'connected to this coordinator ({where}) {wait}: start every process with the '
            'same coordinator and num_processes, each with its own process_id')
  if t.process_id > 0:
    return (f'config.training.coordinator: cannot reach the coordinator {where} {wait}: '
            'is process 0 running, and is that address reachable from this host?')
  return (f'config.training.coordinator: the processes did not all connect to the coordinator '
          f'{where} {wait}: does every host run the same command, and reach process 0?')


def _give_up(message: str):
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  os._exit(USAGE_EXIT)   # the main thread is blocked inside jax's connect


def initialize(t):
  """``jax.distributed.initialize`` for ``config.training`` ``t``; a failed connect is one line."""
  if jax.distributed.is_initialized():    # a second run in the same Python process
    return
  watchdog = threading.Timer(t.initialization_timeout, _give_up, (_timeout_message(t),))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(initialization_timeout=t.initialization_timeout + _MARGIN_S,
                               **_kwargs(t))
  except (ValueError, RuntimeError) as e:   # nothing detected, or an incomplete setting
    raise InputError('config.training.coordinator',
                     f'cannot start the distributed run ({str(e).splitlines()[0]}); outside a '
                     'TPU pod, SLURM or Open MPI set training.coordinator, num_processes and '
                     'process_id') from e
  finally:
    watchdog.cancel()


def _flat(tree: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = json.dumps(v, sort_keys=True, default=repr)
  return out


def _digest(text: str) -> np.ndarray:
  return np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], '<i4')


def check_same_config(config, workdir: str):
  """Raise ``InputError`` naming the config keys whose values differ between processes."""
  n = jax.process_count()
  if n == 1:
    return
  items = {k: v for k, v in _flat(config.to_dict()).items() if k not in _PER_PROCESS}
  items['--workdir'] = json.dumps(str(workdir))
  keys = sorted(items)
  heads = multihost_utils.process_allgather(
      np.concatenate([[len(keys)], _digest('\n'.join(keys))]).astype(np.int32))
  if not (heads == heads[0]).all():
    raise InputError('config', f'the {n} processes were started with configs of different '
                     'keys (another config file or variant?); start every process with the same '
                     '--config, overrides and --workdir (only training.process_id differs)')
  table = multihost_utils.process_allgather(np.stack([_digest(items[k]) for k in keys]))
  differ = [k for j, k in enumerate(keys) if not (table[:, j] == table[0, j]).all()]
  if differ:
    here = ', '.join(f'{k} (process {jax.process_index()}: {items[k]})' for k in differ[:4])
    more = f' and {len(differ) - 4} more' if len(differ) > 4 else ''
    raise InputError('config', f'differs between the {n} processes: {here}{more}; start every '
                     'process with the same --config, overrides and --workdir '
                     '(only training.process_id differs)')


def agree(fn):
  """``fn()`` on every process; if it raises on any process, every process raises."""
  try:
    out, error = fn(), None
  except Exception as e:  # any failure must reach the others, or they wait forever
    out, error = None, e
  if jax.process_count() > 1:
    failed = multihost_utils.process_allgather(np.int32(error is not None))
    if error is None and failed.any():
      others = ', '.join(str(i) for i in np.flatnonzero(failed))
      raise InputError('training', f'process {others} stopped on bad input (see its log)')
  if error is not None:
    raise error
  return out


def compile_together(jitted, *args, timeout_s: int):
  """``jitted`` compiled for ``args``; returns once every process has compiled it."""
  compiled = jitted.lower(*args).compile()
  if jax.process_count() > 1:
    ocp.multihost.get_barrier_sync_fn()(key='memvos_train_step_compiled',
                                         timeout_ms=timeout_s * 1000)
  return compiled


def gather_rows(local: np.ndarray) -> np.ndarray:
  """[k, b] per process -> [k, processes * b]: rows of the global batch, in process order."""
  if jax.process_count() == 1:
    return local
  every = multihost_utils.process_allgather(local)            # [processes, k, b]
  return np.concatenate(list(every), axis=1)
