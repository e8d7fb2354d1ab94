"""AFB-URR (Liang et al., NeurIPS 2020): everything that is AFB-URR's own, and its ``FAMILY``.

  * ``modeling``: the network (encoders, key-value projections);
  * ``urr``: the uncertain-region refinement decoder;
  * ``inference``: the per-frame scan step over the adaptive feature bank
    (``memory.adaptive``: merge + LFU);
  * ``convert``: the official release -> Flax variables.
"""

import jax.numpy as jnp

from memvos_jax.models.afb_urr import convert, inference
from memvos_jax.models.afb_urr.modeling import AFBURR
from memvos_jax.models.family import Family


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 64, 64)))


def _init_state(model, settings, num_objects, size):
  return inference.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


FAMILY = Family(
    name='afb_urr',
    network=AFBURR,
    build=AFBURR,
    init_variables=_init_variables,
    abstract_variables=convert.abstract_variables,
    convert=convert.convert,
    make_settings=inference.AFBSettings,
    init_state=_init_state,
    step=inference.frame_step,
    memory_frames=inference.memory_frames,
)
