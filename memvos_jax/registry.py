"""The one list of models: every name ``eval.py``, ``train.py``, ``memvos_jax.load``
and the converter CLI take, with its family and its config.

Each model is a package ``memvos_jax/models/<name>/`` whose ``__init__`` declares
``FAMILY`` (``models/family.py``), and a config ``memvos_jax/configs/<name>.py``.
``default`` is the shipped small STCN: STCN's family with its own config
(``configs/default.py``) and weights (``memvos_jax/weights``).

    from memvos_jax import registry
    registry.names()                  # ['afb_urr', 'default', 'rpm', 'sam2', 'stcn', 'stm']
    config = registry.config('stcn', 'tiny')
    model = registry.build_model(config)
    variables = registry.load_variables(config, model)
"""

import dataclasses
import os
import types

import ml_collections

from memvos_jax.configs import afb_urr as afb_urr_config
from memvos_jax.configs import default as default_config
from memvos_jax.configs import rpm as rpm_config
from memvos_jax.configs import sam2 as sam2_config
from memvos_jax.configs import stcn as stcn_config
from memvos_jax.configs import stm as stm_config
from memvos_jax.errors import InputError
from memvos_jax.models import afb_urr, rpm, sam2, stcn, stm
from memvos_jax.models.family import Family


@dataclasses.dataclass(frozen=True)
class Entry:
  family: Family
  config: types.ModuleType     # ``get_config(variant=None)``


DEFAULT = 'default'
MODELS = {
    'afb_urr': Entry(afb_urr.FAMILY, afb_urr_config),
    DEFAULT: Entry(stcn.FAMILY, default_config),
    'rpm': Entry(rpm.FAMILY, rpm_config),
    'sam2': Entry(sam2.FAMILY, sam2_config),
    'stcn': Entry(stcn.FAMILY, stcn_config),
    'stm': Entry(stm.FAMILY, stm_config),
}
FAMILIES = {e.family.name: e.family for e in MODELS.values()}


def names() -> list[str]:
  """Every model name, sorted (the families and ``default``)."""
  return sorted(MODELS)


def _entry(name: str) -> Entry:
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r} (known: {", ".join(names())})')
  return MODELS[name]


def get(name: str) -> Family:
  """The family of model ``name``; a ValueError lists the known names."""
  return _entry(name).family


def config_module(name: str) -> types.ModuleType:
  """The config module of model ``name`` (``memvos_jax/configs/<name>.py``)."""
  return _entry(name).config


def config(name: str, variant: str | None = None) -> ml_collections.ConfigDict:
  """Config ``name`` (its default variant, or ``variant``), as ``configs/<name>.py:<variant>``."""
  return config_module(name).get_config(variant)


def of(module) -> Family:
  """The family of a built network (by its class); a ValueError for any other module."""
  for family in FAMILIES.values():
    if isinstance(module, family.network):
      return family
  raise ValueError(f'{type(module).__name__} is not the network of any model '
                   f'(known: {", ".join(f.network.__name__ for f in FAMILIES.values())})')


def trainable() -> list[str]:
  """The families ``train.py`` can train."""
  return sorted(n for n, f in FAMILIES.items() if f.trainer)


def trainer(name: str):
  """``train(config, workdir)`` of model ``name``; a ValueError names the trainable ones."""
  family = get(name)
  if not family.trainer:
    raise ValueError(f'model {name!r} has no trainer here: its official weights are converted '
                     f'instead (train.py trains: {", ".join(trainable())})')
  return family.trainer


def build_model(config):
  """The network named by ``config.model`` with ``config.network`` settings."""
  try:
    family = get(config.model)
  except ValueError as e:
    raise ValueError(f'config.model: {e}') from None
  return family.build(**config.network.to_dict())


def load_variables(config, model):
  """``config.model``'s family reads ``config.checkpoint`` for ``model``
  (``Family.load_variables``: official file, orbax folder, Flax .npz or random)."""
  return get(config.model).load_variables(config, model)


def convert_file(path: str, model_name: str, model=None) -> dict:
  """Read an official ``.pth``/``.pt``/``.npz`` file and convert it for ``model_name``."""
  if not os.path.isfile(path):    # the file first, then the name (as the CLI reports them)
    raise InputError(path, 'checkpoint file does not exist')
  try:
    family = get(model_name)
  except ValueError as e:
    raise InputError(path, f'no converter: {e}') from None
  return family.convert_file(path, model)
