"""Self-supervised RPM-Net training: reconstruct a frame from its neighbour.

The objective of the paper's scheme: the matching module compares the
embeddings of a target frame and a nearby reference frame; layer 109 samples
the reference image, averaged down to stride 4, at the predicted positions;
the loss is the mean L1 distance (RGB in [0, 1]) between that reconstruction
and the target frame averaged down to stride 4. No mask is ever read.
``identity`` in the logs is the same distance with zero displacement (the
reference copied unchanged): a loss below it means the network matches.

The train state and optimiser are the shared ones (``training/state.py``:
Adam with weight decay added to the gradient, step decay; BatchNorm frozen).
The loop is a plain ``jax.jit`` update on one device.

    python train.py --config configs/rpm.py:tiny --workdir runs/rpm
    memvos_jax.models.rpm.train(config, workdir)      # the same, from Python
"""

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert import checkpoint
from memvos_jax.data import frame_pairs
from memvos_jax.inference.core import normalize
import memvos_jax.models.rpm.modeling as rpm
from memvos_jax.training.state import TrainState, create_state, make_optimizer


def reconstruction_loss(model, params, batch_stats, target, reference):
  """Mean L1 at stride 4; returns (loss, {'loss', 'identity', 'offset'})."""
  source = reference.astype(jnp.float32) / 255.0
  want = rpm.downsample(target.astype(jnp.float32) / 255.0)             # [B, h, w, 3]
  out, offsets = model.apply({'params': params, 'batch_stats': batch_stats},
                             normalize(target), normalize(reference), source)
  loss = jnp.mean(jnp.abs(out - want))
  identity = jnp.mean(jnp.abs(rpm.downsample(source) - want))
  return loss, {'loss': loss, 'identity': identity,
                'offset': jnp.mean(jnp.linalg.norm(offsets, axis=-1))}


def make_step(model, optimizer):
  """Jitted ``(state, target, reference) -> (state, metrics)``."""
  @functools.partial(jax.jit, donate_argnums=(0,))
  def step(state: TrainState, target, reference):
    grad_fn = jax.grad(reconstruction_loss, argnums=1, has_aux=True)
    grads, metrics = grad_fn(model, state.params, state.batch_stats, target, reference)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics
  return step


def make_eval(model):
  """Jitted ``(variables, target, reference) -> metrics`` (no update)."""
  @jax.jit
  def evaluate(variables, target, reference):
    return reconstruction_loss(model, variables['params'], variables['batch_stats'],
                               target, reference)[1]
  return evaluate


def init_state(family, config, model, variables=None) -> TrainState:
  """``variables``, else ``config.checkpoint`` (read by ``family``), else random init."""
  if variables is None:
    if config.checkpoint:
      variables = family.load_variables(config, model, bf16_kernels=False)
    else:
      variables = rpm.init_variables(model, jax.random.key(config.training.seed))
  return create_state(variables, make_optimizer(config))


def train(family, config, workdir: str | None = None, log=print, variables=None):
  """Train ``family``'s network (RPM-Net's, ``memvos_jax.models.rpm.train``) for
  ``config.training.num_steps``; returns (variables, history).

  ``history`` is a list of {'step', 'loss', 'identity', 'offset', 'seconds'}
  (means over each ``log_every`` window). With a ``workdir`` the final
  variables go to ``workdir/export`` (orbax; ``eval.py`` reads it) and the
  history to ``workdir/history.json``.
  """
  t = config.training
  model = family.build(**config.network.to_dict())
  data = frame_pairs.FramePairs(
      frame_pairs.find_frame_folders(config.data.train_roots), t.crop_size,
      config.data.short_side, t.max_gap, t.reverse_prob, t.flip_prob, t.seed, t.max_shift)
  state = init_state(family, config, model, variables)
  step = make_step(model, make_optimizer(config))
  history, window, tic = [], [], time.perf_counter()
  for i in range(t.num_steps):
    batch = data.batch(i, t.batch_size)
    state, metrics = step(state, batch['target'], batch['reference'])
    window.append(metrics)
    if (i + 1) % t.log_every == 0 or i + 1 == t.num_steps:
      row = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
      row.update(step=i + 1, seconds=round(time.perf_counter() - tic, 1))
      history.append(row)
      window = []
      log(f'step {row["step"]}: loss {row["loss"]:.4f} (identity {row["identity"]:.4f}), '
          f'|offset| {row["offset"]:.2f}, {row["seconds"]}s')
    if workdir and t.checkpoint_every and (i + 1) % t.checkpoint_every == 0:
      checkpoint.save_variables(os.path.join(workdir, f'step_{i + 1}'), state.variables)
  variables = jax.tree.map(np.asarray, state.variables)
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    checkpoint.save_variables(os.path.join(workdir, 'export'), variables)
    with open(os.path.join(workdir, 'history.json'), 'w') as f:
      json.dump(history, f, indent=1)
  return variables, history

