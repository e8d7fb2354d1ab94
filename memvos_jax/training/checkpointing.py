"""Orbax checkpoints of a training run: one ``ocp.args.Composite`` per save.

``<workdir>/checkpoints/<step>/`` holds three items:
  variables  {'params', 'batch_stats'}: a plain orbax pytree, the format
             ``memvos_jax.convert.checkpoint.restore_variables`` reads, so
             ``eval.py --config.checkpoint=<workdir>/checkpoints/<step>/variables``
             evaluates it directly;
  train      {'step', 'opt_state'};
  data       the position of the data stream (JSON): ``next_step``,
             ``next_sample`` (= next_step x global batch), ``global_batch``
             and the process count that wrote it.

The data position is a function of the global step only: sample ``g`` is a
pure function of (seed, g) and each process reads its slice of every global
batch (``memvos_jax.data.sampling``), so a resumed run rebuilds its iterator
at the restored step (``sampling.make_iterator(ds, config, step)``). That is
exact for any number of processes, including one other than the writer's
(grain's own iterator state is per process and counts local batches, which
would not carry over). The data item is that position, written once.

Several processes: every process calls ``save`` and ``restore`` (orbax's
collectives). Orbax's primary host (process 0) creates the step folder,
writes the metadata and the data JSON and finalises; array shards are
written by the process that holds their first replica. A save goes to
``<step>.orbax-checkpoint-tmp-<n>`` and is renamed to ``<step>`` only once
complete, so a process killed mid-save leaves a temporary folder that is
never listed, and the previous checkpoint stays the newest.
Saves are synchronous (a checkpoint is complete once ``save`` returns).
``restore`` takes the newest checkpoint that reads back; a corrupt one is
skipped with a warning.
"""

import functools
import os
import warnings

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from memvos_jax.training.state import TrainState


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  if jax.default_backend() == 'cpu':
    _save_replicas_whole()
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')),
                               options=options, item_names=('variables', 'train', 'data'))


@functools.cache      # once per process
def _save_replicas_whole() -> None:
  """Arrays saved whole from their first replica (orbax's ``jax.Array`` handler, for this
  process), as orbax itself does on GPUs.

  Orbax's default elsewhere, replica-parallel saving, has each of a replicated array's
  N replicas write 1/N of it; it cuts every array with eager JAX slices, one compiled
  program per array shape and replica count. On CPU devices, which share one host
  memory, that gains nothing and costs about 5 s per save of the tiny STCN on 8
  devices (10 s of a 35 s four-step run). The files are the same either way.
  """
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)    # orbax logs a warning for every replaced handler
  try:
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)
  finally:
    logging.set_verbosity(verbosity)


def save(mngr: ocp.CheckpointManager, state: TrainState, global_batch: int) -> int:
  step = int(jax.device_get(state.step))
  position = {'next_step': step, 'next_sample': step * global_batch,
              'global_batch': global_batch, 'process_count': jax.process_count()}
  mngr.save(step, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(state.variables),
      train=ocp.args.StandardSave({'step': state.step, 'opt_state': state.opt_state}),
      data=ocp.args.JsonSave(position)), force=True)
  mngr.wait_until_finished()
  return step


def restore(mngr: ocp.CheckpointManager, abstract_state: TrainState, shardings: TrainState):
  """The newest readable checkpoint -> TrainState (its step is the data position), or None."""
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract_state, shardings)
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      out = mngr.restore(step, args=ocp.args.Composite(
          variables=ocp.args.StandardRestore(
              {'params': target.params, 'batch_stats': target.batch_stats}),
          train=ocp.args.StandardRestore({'step': target.step, 'opt_state': target.opt_state})))
    except Exception as e:  # corrupt / partial: fall back to the previous one
      warnings.warn(f'checkpoint {mngr.directory}/{step} cannot be restored '
                    f'({type(e).__name__}: {str(e).splitlines()[0][:200]}); '
                    'trying the previous one')
      continue
    v, t = out['variables'], out['train']
    return TrainState(step=t['step'], params=v['params'], batch_stats=v['batch_stats'],
                      opt_state=t['opt_state'])
  return None


def variables_path(workdir: str, step: int) -> str:
  return os.path.abspath(os.path.join(workdir, 'checkpoints', str(step), 'variables'))


def as_numpy(tree):
  """Host numpy copies; arrays spread over several processes are all-gathered (collective)."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(one, tree)
