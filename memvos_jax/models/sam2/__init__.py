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
    ``pil_resize``: PIL's bicubic resize (the official image transform);
  * training (official ``training/``), run by the shared loop of
    ``training/trainer.py`` (``train``): ``prompts`` (the simulated prompts),
    ``unroll`` (the clip unrolled as ``SAM2Train``), ``loss`` (the official
    ``MultiStepMultiMasksAndIous``) and ``train_loss`` (the batch loss),
    ``optim`` (AdamW with layer decay), ``checks`` (its config keys).
The official import paths are kept: ``memvos_jax.sam2`` (the builder) and
``memvos_jax.sam2_predictor``.
"""

import jax
import jax.numpy as jnp

from memvos_jax.models.family import Family
from memvos_jax.models.sam2 import checks, common, convert, inference, optim, train_loss
from memvos_jax.models.sam2.modeling import NO_OBJ_SCORE, SAM2, TRUNKS, trunk_items
from memvos_jax.training import trainer

__all__ = ['FAMILY', 'NO_OBJ_SCORE', 'SAM2', 'TRUNKS', 'build', 'train', 'trunk_items']


def build(size: str = 'tiny', **network) -> SAM2:
  return SAM2(trunk=trunk_items(size), **network)


def _init_variables(model, rng):
  s = 256   # parameter shapes do not depend on the image size
  return jax.jit(model.clone(image_size=s).init)(rng, jnp.zeros((s, s, 3), jnp.uint8))


def train(config, workdir: str, devices=None) -> dict:
  """Training / fine-tuning, the official recipe (``python train.py --config
  configs/sam2.py:tiny --config.checkpoint=sam2.1_hiera_tiny.pt``): the shared loop
  (``training.trainer``) over SAM 2's clip unroll, loss and optimiser."""
  return trainer.train(FAMILY, config, workdir, devices, loss_fn=train_loss.loss_fn,
                       optimizer=optim.make)


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
    trainer=train,
    check_config=checks.check_config,
    cast_variables=common.autocast_variables,
)
