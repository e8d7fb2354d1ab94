"""STCN: the network, the official-checkpoint converter and the scan inference core."""

import jax.numpy as jnp

from memvos_jax.convert import stcn as convert_stcn
from memvos_jax.families import Family
from memvos_jax.inference import stcn as core
from memvos_jax.models.stcn import STCN


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64)))


def _make_settings(mem_every=5, top_k=20, **common) -> core.InferenceSettings:
  return core.InferenceSettings(mem_every=mem_every, top_k=top_k or None, **common)


def _init_state(model, settings, num_objects, size):
  return core.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def _memory_frames(num_frames, annotated, options):
  return core.memory_writes(num_frames, set(annotated), options.get('mem_every', 5))


FAMILY = Family(
    name='stcn',
    build=STCN,
    init_variables=_init_variables,
    abstract_variables=convert_stcn.abstract_variables,
    convert=convert_stcn.convert,
    make_settings=_make_settings,
    init_state=_init_state,
    step=core.frame_step,
    memory_frames=_memory_frames,
    trainer='memvos_jax.training.trainer',     # supervised (STCN recipe)
)
