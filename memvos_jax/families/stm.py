"""STM: the network, the official-checkpoint converter and the scan inference core."""

import jax.numpy as jnp

from memvos_jax.convert import stm as convert_stm
from memvos_jax.families import Family
from memvos_jax.inference import stm as inference_stm
from memvos_jax.models.stm import STM


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64)))


def _make_settings(mem_every=5, **common) -> inference_stm.STMSettings:
  return inference_stm.STMSettings(mem_every=mem_every, **common)


def _init_state(model, settings, num_objects, size):
  return inference_stm.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def _memory_frames(num_frames, annotated, options):
  return inference_stm.memory_writes(num_frames, set(annotated), options.get('mem_every', 5))


FAMILY = Family(
    name='stm',
    build=STM,
    init_variables=_init_variables,
    abstract_variables=convert_stm.abstract_variables,
    convert=convert_stm.convert,
    make_settings=_make_settings,
    init_state=_init_state,
    step=inference_stm.frame_step,
    memory_frames=_memory_frames,
)
