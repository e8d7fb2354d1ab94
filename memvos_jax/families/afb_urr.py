"""AFB-URR: the network, the official-checkpoint converter and the adaptive-bank inference core."""

import jax.numpy as jnp

from memvos_jax.convert import afb_urr as convert_afb_urr
from memvos_jax.families import Family
from memvos_jax.inference import afb_urr as core
from memvos_jax.models.afb_urr import AFBURR


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 64, 64)))


def _make_settings(budget=300_000, update_rate=0.1, thres_close=0.95, thres_valid=1e-3,
                   **common) -> core.AFBSettings:
  return core.AFBSettings(budget=budget, update_rate=update_rate, thres_close=thres_close,
                          thres_valid=thres_valid, **common)


def _init_state(model, settings, num_objects, size):
  return core.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


FAMILY = Family(
    name='afb_urr',
    build=AFBURR,
    init_variables=_init_variables,
    abstract_variables=convert_afb_urr.abstract_variables,
    convert=convert_afb_urr.convert,
    make_settings=_make_settings,
    init_state=_init_state,
    step=core.frame_step,
    memory_frames=core.memory_frames,
)
