"""STM (Oh et al., ICCV 2019): everything that is STM's own, and its ``FAMILY``.

  * ``modeling``: the network (memory and query encoders, decoder);
  * ``inference``: the per-frame scan step (kept frames plus the previous one);
  * ``convert``: official ``STM_weights.pth`` -> Flax variables.
"""

import jax.numpy as jnp

from memvos_jax.models.family import Family
from memvos_jax.models.stm import convert, inference
from memvos_jax.models.stm.modeling import STM


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64)))


def _init_state(model, settings, num_objects, size):
  return inference.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def _memory_frames(num_frames, annotated, options):
  every = options.get('mem_every', inference.STMSettings.mem_every)
  return inference.memory_writes(num_frames, set(annotated), every)


FAMILY = Family(
    name='stm',
    network=STM,
    build=STM,
    init_variables=_init_variables,
    abstract_variables=convert.abstract_variables,
    convert=convert.convert,
    make_settings=inference.STMSettings,
    init_state=_init_state,
    step=inference.frame_step,
    memory_frames=_memory_frames,
    bucket_memory=True,
)
