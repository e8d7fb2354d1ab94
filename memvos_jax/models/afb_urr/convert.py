"""Official AFB-URR checkpoints (xmlyqing00/AFB-URR) -> Flax variables.

The release is ``{'epoch', 'model': state_dict, 'loss', 'seed', ...}`` and
the official ``eval.py`` loads ``checkpoint['model']`` with ``strict=False``;
``load_state_dict`` unwraps ``model`` (the other entries are training
bookkeeping), a bare state_dict and a ``module.`` (DataParallel) prefix are
accepted too. The network's weights are mapped strictly. Ignored, and
listed by ``ignored_keys``: the encoders' ``mean``/``std`` buffers (checked
to be the ImageNet constants the inference core normalises with) and
BatchNorm ``num_batches_tracked`` counters.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert.common import torch_to_flax
from memvos_jax.errors import CheckpointError
from memvos_jax.inference.core import IMAGENET_MEAN, IMAGENET_STD
from memvos_jax.models.afb_urr.modeling import AFBURR

RENAMES = tuple(
    (f'{enc}.res{i + 2}.', f'{enc}.layer{i + 1}.')
    for enc in ('encoder_q', 'encoder_m') for i in range(3))
BUFFERS = {f'{enc}.{name}': const for enc in ('encoder_q', 'encoder_m')
           for name, const in (('mean', IMAGENET_MEAN), ('std', IMAGENET_STD))}


def abstract_variables(model: AFBURR, num_classes: int = 2, size=(64, 64)):
  """Shapes of the model's variables (no computation)."""
  image = jnp.zeros((1,) + tuple(size) + (3,), jnp.float32)
  masks = jnp.zeros((num_classes,) + tuple(size), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), image, masks)


def _strip_prefix(state: dict) -> dict:
  if state and all(k.startswith('module.') for k in state):
    return {k[len('module.'):]: v for k, v in state.items()}
  return state


def ignored_keys(state: dict) -> list[str]:
  """Keys of an official state_dict that carry no network weight."""
  state = _strip_prefix(dict(state))
  return sorted(k for k in state if k in BUFFERS or k.endswith('.num_batches_tracked'))


def convert(state: dict, model: AFBURR | None = None, source: str = 'checkpoint') -> dict:
  """Official AFB-URR state_dict -> variables for ``memvos_jax.models.afb_urr.AFBURR``."""
  model = model or AFBURR()
  state = _strip_prefix(dict(state))
  for name, const in BUFFERS.items():
    if name in state and not np.allclose(np.asarray(state[name]).reshape(-1), const, atol=1e-6):
      raise CheckpointError(f'{source}: {name} is {np.asarray(state[name]).reshape(-1)}, '
                            f'not the ImageNet constants {const}')
  ignored = ignored_keys(state)
  logging.getLogger(__name__).info('%s: ignored %d keys (normalisation buffers, BN counters): %s',
                                   source, len(ignored), ', '.join(ignored))
  return torch_to_flax(state, abstract_variables(model), RENAMES, source=source,
                       ignore=BUFFERS)
