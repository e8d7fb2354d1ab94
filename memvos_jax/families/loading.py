"""Build a family's network from a config and load its weights (official file, Flax .npz, orbax).

``build_model`` / ``load_variables`` are what ``eval.py``, the Python API,
training and notebooks use; ``convert_file`` reads one official checkpoint
file for a named model (``python -m memvos_jax.convert``).
"""

import os
import warnings

import jax
import numpy as np

from memvos_jax import families
from memvos_jax.checkpoint import is_flax_npz, load_npz, restore_variables
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import InputError
from memvos_jax.inference import core


def build_model(config):
  """The network named by ``config.model`` with ``config.network`` settings."""
  try:
    family = families.get(config.model)
  except ValueError as e:
    raise ValueError(f'config.model: {e}') from None
  return family.build(**config.network.to_dict())


def convert_file(path: str, model_name: str, model=None) -> dict:
  """Read an official ``.pth``/``.pt``/``.npz`` file and convert it for ``model_name``."""
  if not os.path.isfile(path):
    raise InputError(path, 'checkpoint file does not exist')
  try:
    family = families.get(model_name)
  except ValueError as e:
    raise InputError(path, f'no converter: {e}') from None
  model = model if model is not None else family.build()
  return family.convert(load_state_dict(path), model, source=path)


def load_variables(config, model):
  """Variables from ``config.checkpoint``: official .pth/.npz, orbax folder, a Flax
  ``.npz`` (``checkpoint.save_npz``, the shipped weights), or random.

  With ``config.inference.dtype='bfloat16'`` it first sets the XLA flag for
  bf16 kernels (``core.bf16_kernels``): loading weights starts JAX's backend.
  """
  if config.get('inference', {}).get('dtype') == 'bfloat16':
    core.bf16_kernels()
  family = families.of(model)
  path = config.checkpoint
  if not path:
    warnings.warn('config.checkpoint is empty: using randomly initialised weights')
    return family.init_variables(model, jax.random.key(0))
  if os.path.isdir(path) or is_flax_npz(path):
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                          family.abstract_variables(model))
    return restore_variables(path, target) if os.path.isdir(path) else load_npz(path, target)
  return convert_file(path, family.name, model)
