"""The ml_collections configs of every model, importable from an installed package.

One module per config (``default``, ``stcn``, ``stm``, ``afb_urr``, ``sam2``,
``rpm``), each with ``get_config(arg=None)`` (``arg``: the variant, e.g.
``'tiny'``). ``memvos_jax.load`` and the benchmarks read them from here; the
top-level ``configs/<name>.py`` files of a checkout import the same
``get_config`` so that ``train.py``/``eval.py --config configs/stcn.py:tiny``
works as before. ``common`` holds what they share (variant parsing, every
model's ``runlocal`` variant, the eval.py data block).

    from memvos_jax import configs
    configs.names()                  # ['afb_urr', 'default', 'rpm', 'sam2', 'stcn', 'stm']
    config = configs.get('stcn', 'tiny')
"""

import importlib
import pkgutil
import types

import ml_collections


def names() -> list[str]:
  """The known config names, sorted (``common`` holds shared parts, not a config)."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if not m.name.startswith('_') and m.name != 'common')


def module(name: str) -> types.ModuleType:
  """The config module ``name`` (ValueError naming the known configs for an unknown one)."""
  known = names()
  if name not in known:
    raise ValueError(f'unknown config {name!r} (known: {", ".join(known)})')
  return importlib.import_module(f'{__name__}.{name}')


def get(name: str, variant: str | None = None) -> ml_collections.ConfigDict:
  """Config ``name`` (its default variant, or ``variant``), as ``configs/<name>.py:<variant>``."""
  return module(name).get_config(variant)
