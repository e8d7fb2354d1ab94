"""Official PyTorch checkpoints -> Flax variables (strict: every key accounted for).

``python -m memvos_jax.convert --model stcn SRC.pth OUT_DIR`` converts and
saves an orbax checkpoint that ``eval.py`` loads directly.
"""

import os

from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import InputError


def convert_file(path: str, model_name: str, model=None) -> dict:
  """Read an official ``.pth``/``.pt``/``.npz`` file and convert it for ``model_name``."""
  if not os.path.isfile(path):
    raise InputError(path, 'checkpoint file does not exist')
  from memvos_jax import families
  try:
    family = families.get(model_name)
  except ValueError as e:
    raise InputError(path, f'no converter: {e}') from None
  model = model if model is not None else family.build()
  return family.convert(load_state_dict(path), model, source=path)
