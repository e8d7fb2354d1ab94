"""SAM 2.1: the network, the official-checkpoint converter and the VOS-protocol scan core.

The per-frame core (official ``tools/vos_inference.py`` semantics) is
``inference/sam2.py``; the promptable predictor API is ``sam2_predictor``.
"""

import jax
import jax.numpy as jnp

from memvos_jax.convert import sam2 as convert_sam2
from memvos_jax.families import Family
from memvos_jax.inference import sam2 as core
from memvos_jax.models.sam2 import SAM2, trunk_items


def build(size: str = 'tiny', **network) -> SAM2:
  return SAM2(trunk=trunk_items(size), **network)


def _init_variables(model, rng):
  s = 256   # parameter shapes do not depend on the image size
  return jax.jit(model.clone(image_size=s).init)(rng, jnp.zeros((s, s, 3), jnp.uint8))


def _make_settings(**options) -> core.Sam2StepSettings:
  return core.Sam2StepSettings(**options)


FAMILY = Family(
    name='sam2',
    build=build,
    init_variables=_init_variables,
    abstract_variables=lambda model: convert_sam2.target_shapes(model, 256),
    convert=convert_sam2.convert,
    make_settings=_make_settings,
    init_state=core.init_state,
    step=core.frame_step,
    memory_frames=core.memory_frames,
)
