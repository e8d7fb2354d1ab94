"""SAM 2.1 (Ravi et al., 2024): everything that is SAM 2's own, and its ``FAMILY``.

  * ``modeling``: the network (``SAM2``), from ``hiera`` (image encoder),
    ``prompt_encoder``, ``mask_decoder``, ``memory_encoder``,
    ``memory_attention`` and ``common`` (its layers); ``memory_bank`` (the
    fixed-shape per-object memories) and ``tracking`` (one frame of the
    official tracking step);
  * ``inference``: the VOS-protocol scan step (official ``tools/vos_inference.py``);
  * ``convert``: official ``sam2.1_hiera_*.pt`` -> Flax variables;
  * ``predictor``: the official ``SAM2VideoPredictor`` API (``Sam2Predictor``),
    ``builder``: ``build_sam2_video_predictor``, ``video``: its frame reader,
    ``pil_resize``: PIL's bicubic resize (the official image transform).
The official import paths are kept: ``memvos_jax.sam2`` (the builder) and
``memvos_jax.sam2_predictor``.
"""

import jax
import jax.numpy as jnp

from memvos_jax.models.family import Family
from memvos_jax.models.sam2 import convert, inference
from memvos_jax.models.sam2.modeling import NO_OBJ_SCORE, SAM2, TRUNKS, trunk_items

__all__ = ['FAMILY', 'NO_OBJ_SCORE', 'SAM2', 'TRUNKS', 'build', 'trunk_items']


def build(size: str = 'tiny', **network) -> SAM2:
  return SAM2(trunk=trunk_items(size), **network)


def _init_variables(model, rng):
  s = 256   # parameter shapes do not depend on the image size
  return jax.jit(model.clone(image_size=s).init)(rng, jnp.zeros((s, s, 3), jnp.uint8))


FAMILY = Family(
    name='sam2',
    network=SAM2,
    build=build,
    init_variables=_init_variables,
    abstract_variables=lambda model: convert.target_shapes(model, 256),
    convert=convert.convert,
    make_settings=inference.Sam2StepSettings,
    init_state=inference.init_state,
    step=inference.frame_step,
    memory_frames=inference.memory_frames,
)
