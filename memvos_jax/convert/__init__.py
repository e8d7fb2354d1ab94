"""Official PyTorch checkpoints -> Flax variables (strict: every key accounted for).

``python -m memvos_jax.convert --model stcn SRC.pth OUT_DIR`` converts and
saves an orbax checkpoint that ``eval.py`` loads directly.
"""

import os

from memvos_jax.convert import stcn as _stcn
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import InputError

CONVERTERS = {'stcn': _stcn.convert}


def convert_file(path: str, model_name: str, model=None) -> dict:
  """Read an official ``.pth``/``.pt``/``.npz`` file and convert it for ``model_name``."""
  if not os.path.isfile(path):
    raise InputError(path, 'checkpoint file does not exist')
  if model_name not in CONVERTERS:
    raise InputError(path, f'no converter for model {model_name!r} '
                     f'(known: {", ".join(sorted(CONVERTERS))})')
  return CONVERTERS[model_name](load_state_dict(path), model, source=path)
