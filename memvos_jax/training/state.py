"""Train state, optimiser and initial variables.

Adam with L2 weight decay added to the gradient (torch ``Adam(weight_decay)``)
and a step decay (``MultiStepLR``): the official STCN optimiser; or
(``training.optimizer='adamw'``) decoupled weight decay, torch ``AdamW``
(AFB-URR's). Only ``params`` train; BatchNorm statistics stay frozen
(``batch_stats`` are carried unchanged), as the official network always runs
in eval mode.
"""

import re
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array          # [] int32: updates done
  params: Any              # trained
  batch_stats: Any         # frozen BatchNorm statistics
  opt_state: Any

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def lr_schedule(config):
  """MultiStepLR(lr_steps, gamma), times a linear warm-up over ``warmup_steps`` (0: none)."""
  t = config.training
  decay = optax.piecewise_constant_schedule(
      t.learning_rate, {int(s): t.lr_gamma for s in t.lr_steps})
  if not t.warmup_steps:
    return decay
  return lambda step: decay(step) * jnp.minimum(1.0, (step + 1) / t.warmup_steps)


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam with L2 decay (or AdamW) and the step schedule; parameters matching
  ``training.freeze`` stay fixed."""
  if config.training.get('optimizer', 'adam') == 'adamw':
    # torch AdamW: p -= lr * (adam(g) + wd * p), the decay outside the moments.
    adam = optax.chain(
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.add_decayed_weights(config.training.weight_decay),
        optax.scale_by_learning_rate(lr_schedule(config)))
  else:
    adam = optax.chain(
        optax.add_decayed_weights(config.training.weight_decay),
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.scale_by_learning_rate(lr_schedule(config)))
  if not config.training.get('freeze', ''):
    return adam
  pattern = re.compile(config.training.freeze)

  def labels(params):   # 'frozen' where the path 'a/b/c/' matches the regex (re.match)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: 'frozen' if pattern.match(
            '/'.join(str(getattr(k, 'key', k)) for k in path) + '/') else 'train', params)
  # Frozen parameters get no update at all (not even the decay), and XLA drops their
  # gradients, so the backward pass stops where the first trained layer begins.
  return optax.multi_transform({'train': adam, 'frozen': optax.set_to_zero()}, labels)


def init_variables(config, model, family):
  """``config.checkpoint`` (official .pth/.npz or orbax folder, read by ``family``), else
  random init."""
  if config.checkpoint:   # without the bf16 inference flag: it changes float32 rounding
    return family.load_variables(config, model, bf16_kernels=False)
  t = config.training
  size = 64
  image = jnp.zeros((1, size, size, 3), jnp.float32)
  masks = jnp.zeros((max(t.max_objects, 1), size, size), jnp.float32)
  if t.init_rng == 'rbg':    # one compiled program with XLA's RngBitGenerator
    return jax.jit(model.init)(jax.random.key(t.seed, impl='rbg'), image, masks)
  return model.init(jax.random.key(t.seed), image, masks)


def create_state(variables, optimizer) -> TrainState:
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=optimizer.init(params))
