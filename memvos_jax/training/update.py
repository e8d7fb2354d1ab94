"""The jitted training update: data parallel over a 1-D device mesh.

One ``jax.jit`` with explicit ``in_shardings``/``out_shardings`` and the state
donated. The global batch is split over the ``data`` axis; parameters (and
the optimiser moments) are replicated, or, with
``training.param_sharding='sharded'``, each split along its largest dimension
divisible by the device count (ZeRO-3 style; XLA inserts the gathers).
"""

import functools

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from memvos_jax.training.state import TrainState

DATA = 'data'


def make_mesh(devices=None) -> jax.sharding.Mesh:
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def _leaf_spec(shape, n: int, sharded: bool) -> P:
  """Largest axis divisible by n -> sharded over DATA; else replicated."""
  if not sharded or n == 1 or not shape:
    return P()
  order = sorted(range(len(shape)), key=lambda i: -shape[i])
  for i in order:
    if shape[i] % n == 0:
      spec = [None] * len(shape)
      spec[i] = DATA
      return P(*spec)
  return P()


def state_shardings(mesh, abstract_state: TrainState, param_sharding: str) -> TrainState:
  """A TrainState of NamedShardings (moments follow their parameters' shapes)."""
  n = mesh.devices.size
  sharded = param_sharding == 'sharded'
  rep = NamedSharding(mesh, P())
  leaf = lambda x: NamedSharding(mesh, _leaf_spec(x.shape, n, sharded))
  return TrainState(
      step=rep,
      params=jax.tree.map(leaf, abstract_state.params),
      batch_stats=jax.tree.map(lambda x: rep, abstract_state.batch_stats),
      opt_state=jax.tree.map(leaf, abstract_state.opt_state))


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA))


def put_batch(batch: dict, mesh) -> dict:
  """Per-process numpy batch -> global arrays split over DATA (multi-host safe)."""
  sh = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sh, np.asarray(v))
          for k, v in batch.items()}


def train_step(state: TrainState, batch, *, model, config, optimizer, loss_fn):
  """One update; ``loss_fn(params, batch_stats, batch, step, model, config) -> (loss, metrics)``
  is the model's (STCN: ``models.stcn.loss.loss_fn``)."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, state.batch_stats, batch, state.step,
                                model, config)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics['grad_norm'] = optax.tree.norm(grads)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def make_update(model, config, optimizer, mesh, abstract_state: TrainState, loss_fn):
  """(jitted update, state shardings). ``update(state, batch) -> (state, metrics)``;
  ``loss_fn``: the model's batch loss (``train_step``)."""
  state_sh = state_shardings(mesh, abstract_state, config.training.param_sharding)
  data_sh = batch_sharding(mesh)
  rep = NamedSharding(mesh, P())
  update = jax.jit(
      functools.partial(train_step, model=model, config=config, optimizer=optimizer,
                        loss_fn=loss_fn),
      in_shardings=(
          state_sh,    # state: params/moments replicated (or split), step replicated
          data_sh,     # batch: every array split on its leading (batch) axis over DATA
      ),
      out_shardings=(
          state_sh,    # new state: same layout as the input, so the donation reuses it
          rep,         # metrics: scalars, replicated on every device
      ),
      donate_argnums=(0,))  # the old state's buffers become the new state's
  return update, state_sh
