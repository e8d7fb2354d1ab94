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
more than 30 s apart, and compile times differ (a busy host). On CPU the
persistent compilation cache is off once several processes are connected:
a program loaded from it on process 0 only runs under another launch id than
the other processes' compiled one, and its collectives deadlock.

The start-up exchanges (config digests, error flags) go through the
distributed service's key-value store (``allgather``) with a deadline
(``training.collective_timeout``); the logged sample indices between steps
use a device all-gather, bounded by the training loop's ``Watchdog``. A process that does not arrive in time
(crashed, or on another code path) ends every waiting process with one line
naming the step, the call and the process that is missing, instead of a hang.
"""

import base64
import hashlib
import io
import itertools
import json
import os
import sys
import threading
import time

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from memvos_jax.errors import USAGE_EXIT, InputError

_PER_PROCESS = ('training.process_id',)   # the keys that may differ between processes
_MARGIN_S = 10       # jax's own deadline, after the watchdog's
_STUCK_EXIT = 1
# Fault injection for tests: 'CALL@PROCESS' makes that process skip its first CALL.
_SKIP_ENV = 'MEMVOS_SKIP_COLLECTIVE'
_state = {'timeout_s': 600, 'seq': itertools.count(), 'skipped': False}


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


def _give_up(message: str, code: int = USAGE_EXIT):
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  os._exit(code)   # the main thread may be blocked inside jax (connect, a collective)


def initialize(t):
  """``jax.distributed.initialize`` for ``config.training`` ``t``; a failed connect is one line."""
  _state['timeout_s'] = t.collective_timeout
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
  _compile_on_every_process()


def _compile_on_every_process():
  """No persistent compilation cache in a multi-process CPU run (before the first compile).

  jax's CPU cache key differs between the processes (its hash of the devices'
  topology), and only process 0 writes entries: in a later run process 0
  loads every multi-process program from the cache while the others compile
  it. A loaded executable has another fingerprint than a compiled one, so
  jax gives its executions another launch id (XLA's ``run_id``) than the
  other processes' executions of the same program, and its first gloo
  collective never completes on any process (the first training step of
  any run after the first, resumed or not). Every process compiles instead;
  the others did anyway, and compile concurrently.
  """
  if (jax.process_count() > 1 and jax.default_backend() == 'cpu'
      and jax.config.jax_enable_compilation_cache):
    jax.config.update('jax_enable_compilation_cache', False)


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
  heads = allgather(np.concatenate([[len(keys)], _digest('\n'.join(keys))]).astype(np.int32),
                    'check_same_config (keys)')
  if not (heads == heads[0]).all():
    raise InputError('config', f'the {n} processes were started with configs of different '
                     'keys (another config file or variant?); start every process with the same '
                     '--config, overrides and --workdir (only training.process_id differs)')
  table = allgather(np.stack([_digest(items[k]) for k in keys]), 'check_same_config (values)')
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
    failed = allgather(np.int32(error is not None), 'agree')
    if error is None and failed.any():
      others = ', '.join(str(i) for i in np.flatnonzero(failed))
      raise InputError('training', f'process {others} stopped on bad input (see its log)')
  if error is not None:
    raise error
  return out


def compile_together(jitted, *args, timeout_s: int, step: int | None = None):
  """``jitted`` compiled for ``args``; returns once every process has compiled it."""
  compiled = jitted.lower(*args).compile()
  if jax.process_count() > 1:
    try:
      ocp.multihost.get_barrier_sync_fn()(key='memvos_train_step_compiled',
                                           timeout_ms=timeout_s * 1000)
    except Exception:  # the service's deadline: a process never compiled (crashed, stuck)
      _stuck('the barrier after compiling the training step', step, None, timeout_s)
  return compiled


def gather_rows(local: np.ndarray, step: int | None = None) -> np.ndarray:
  """[k, b] per process -> [k, processes * b]: rows of the global batch, in process order."""
  if jax.process_count() == 1:
    return local
  if _skip('gather_rows'):   # fault injection (tests): this process skips the exchange
    return np.concatenate([local] * jax.process_count(), axis=1)
  # A device all-gather between steps; the Watchdog bounds the wait.
  try:
    every = multihost_utils.process_allgather(local)          # [processes, k, b]
  except Exception:  # a peer went away mid-collective (gloo): one line, not a traceback
    _stuck('gather_rows (the logged sample indices)', step, None, _state['timeout_s'])
  return np.concatenate(list(every), axis=1)


class Watchdog:
  """Ends a stuck multi-process step with one line (a no-op with one process).

  ``arm(step, call, seconds)`` starts a deadline for one loop iteration,
  ``call(name)`` says what the process is doing now, ``disarm()`` stops it.
  A device collective that never completes (another process crashed or took
  another path) blocks inside jax where no exception can reach it: a daemon
  thread then prints ``error: training stuck at step N in CALL ...`` and
  ends the process.
  """

  def __init__(self):
    self.active = jax.process_count() > 1
    self._deadline, self._seconds, self._step, self._call = None, 0, None, ''
    if self.active:
      threading.Thread(target=self._watch, daemon=True).start()

  def arm(self, step: int, call: str, seconds: float):
    self._step, self._call, self._seconds = step, call, seconds
    self._deadline = time.monotonic() + seconds

  def call(self, name: str):
    self._call = name

  def disarm(self):
    self._deadline = None

  def _watch(self):
    while True:
      time.sleep(0.5)
      deadline = self._deadline
      if deadline is not None and time.monotonic() > deadline:
        _give_up(f'training stuck at step {self._step} in {self._call}: no progress for '
                 f'{self._seconds:.0f}s (training.collective_timeout) on process '
                 f'{jax.process_index()}; another process is stuck, crashed or on another '
                 'code path (see its log)', _STUCK_EXIT)


def _encode(x: np.ndarray) -> str:
  buf = io.BytesIO()
  np.save(buf, np.asarray(x), allow_pickle=False)
  return base64.b64encode(buf.getvalue()).decode('ascii')


def _decode(text: str) -> np.ndarray:
  return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def _stuck(call: str, step, missing, timeout_s):
  at = f'step {step}' if step is not None else 'start-up'
  who = f'process {missing} did not reach it' if missing is not None else \
      'not every process reached it'
  _give_up(f'training stuck at {at} in {call}: {who} within {timeout_s}s '
           f'(training.collective_timeout) while process {jax.process_index()} waited there; '
           'see the other processes\' logs (crashed, or on another code path)', _STUCK_EXIT)


def _skip(call: str) -> bool:
  """The fault injection of ``MEMVOS_SKIP_COLLECTIVE`` (tests only)."""
  spec = os.environ.get(_SKIP_ENV, '')
  name, _, proc = spec.rpartition('@')
  if (not _state['skipped'] and name and call.startswith(name)
      and proc.isdigit() and int(proc) == jax.process_index()):
    _state['skipped'] = True
    return True
  return False


def allgather(value, call: str, step: int | None = None, timeout_s=None) -> np.ndarray:
  """A host value of every process, stacked in process order: [processes, ...].

  Through the distributed service's key-value store, with a deadline
  (``training.collective_timeout``): every process must make the same calls in
  the same order (a sequence number and ``call`` name each exchange).
  """
  value = np.asarray(value)
  n = jax.process_count()
  if n == 1:
    return value[None]
  seq = next(_state['seq'])
  if _skip(call):
    return np.stack([value] * n)
  client = ocp.multihost.get_jax_distributed_client()
  key = f'memvos/allgather/{seq}/{call}'
  client.key_value_set(f'{key}/{jax.process_index()}', _encode(value))
  timeout_s = timeout_s or _state['timeout_s']
  parts = []
  for i in range(n):
    try:
      parts.append(_decode(client.blocking_key_value_get(f'{key}/{i}', int(timeout_s * 1000))))
    except Exception:  # DEADLINE_EXCEEDED (jax's error type is not public)
      _stuck(call, step, i, timeout_s)
  return np.stack(parts)
