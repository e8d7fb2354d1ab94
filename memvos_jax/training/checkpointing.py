"""Orbax checkpoints of a training run: one ``ocp.args.Composite`` per save.

``<workdir>/checkpoints/<step>/`` holds three items:
  variables  {'params', 'batch_stats'}: a plain orbax pytree, the format
             ``memvos_jax.checkpoint.restore_variables`` reads, so
             ``eval.py --config.checkpoint=<workdir>/checkpoints/<step>/variables``
             evaluates it directly;
  train      {'step', 'opt_state'};
  data       the grain iterator state (JSON, one file per process).
Saves are synchronous (a checkpoint is complete once ``save`` returns).
``restore`` takes the newest checkpoint that reads back; a corrupt or
partial one is skipped with a warning (orbax never lists unfinished saves).
"""

import os
import warnings

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from memvos_jax.training.state import TrainState


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')),
                               options=options, item_names=('variables', 'train', 'data'))


def save(mngr: ocp.CheckpointManager, state: TrainState, data_iter) -> int:
  step = int(jax.device_get(state.step))
  mngr.save(step, args=ocp.args.Composite(
      variables=ocp.args.StandardSave(state.variables),
      train=ocp.args.StandardSave({'step': state.step, 'opt_state': state.opt_state}),
      data=grain.checkpoint.CheckpointSave(data_iter)), force=True)
  mngr.wait_until_finished()
  return step


def restore(mngr: ocp.CheckpointManager, abstract_state: TrainState, shardings: TrainState,
            data_iter):
  """The newest readable checkpoint -> TrainState (``data_iter`` set in place), or None."""
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract_state, shardings)
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      out = mngr.restore(step, args=ocp.args.Composite(
          variables=ocp.args.StandardRestore(
              {'params': target.params, 'batch_stats': target.batch_stats}),
          train=ocp.args.StandardRestore({'step': target.step, 'opt_state': target.opt_state}),
          data=grain.checkpoint.CheckpointRestore(data_iter)))
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
  return jax.tree.map(np.asarray, jax.device_get(tree))
