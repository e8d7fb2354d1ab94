"""The STM config for ``--config configs/stm.py[:variant]`` (train.py, eval.py).

The config itself lives in the package, ``memvos_jax/configs/stm.py``
(``memvos_jax.registry.config('stm', variant)``); its docstring lists the variants.
This file only re-exports it so that the command lines keep working.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec('memvos_jax') is None:  # loaded by path from outside the checkout
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memvos_jax.configs.stm import get_config  # noqa: E402,F401
