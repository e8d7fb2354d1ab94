"""STM (Oh et al., ICCV 2019): everything that is STM's own, and its ``FAMILY``.

  * ``modeling``: the network (memory and query encoders, decoder);
  * ``inference``: the per-frame scan step (kept frames plus the previous one);
  * ``convert``: official ``STM_weights.pth`` -> Flax variables;
  * ``checks``: its config keys, checked before training builds anything;
  * ``unroll``, ``loss``, ``bn_init``: training (the paper's clip unroll with
    every earlier frame in memory, the soft-aggregation cross-entropy,
    BatchNorm statistics from data), run by the shared loop of
    ``training/trainer.py`` (``train``). The official release has no training
    code: the recipe is the paper's.
"""

import jax.numpy as jnp

from memvos_jax.models.family import Family
from memvos_jax.models.stm import bn_init, checks, convert, inference, loss
from memvos_jax.models.stm.modeling import STM
from memvos_jax.training import trainer


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64)))


def _init_state(model, settings, num_objects, size):
  return inference.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def _memory_frames(num_frames, annotated, options):
  every = options.get('mem_every', inference.STMSettings.mem_every)
  return inference.memory_writes(num_frames, set(annotated), every)


def train(config, workdir: str, devices=None) -> dict:
  """Supervised training, the paper's recipe (``python train.py --config configs/stm.py``):
  the shared loop (``training.trainer``) over STM's clip unroll and loss."""
  return trainer.train(FAMILY, config, workdir, devices, loss_fn=loss.loss_fn,
                       calibrate=bn_init.calibrate)


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
    trainer=train,
    check_config=checks.check_config,
)
