"""STCN (Cheng et al., NeurIPS 2021): everything that is STCN's own, and its ``FAMILY``.

  * ``modeling``: the network (key encoder, value encoder, decoder);
  * ``inference``: the per-frame scan step (memory schedule, top-k read);
  * ``convert``: official ``stcn.pth`` -> Flax variables;
  * ``checks``: its config keys, checked before training builds anything;
  * ``unroll``, ``loss``, ``bn_init``: training (the official clip unroll,
    the bootstrapped cross-entropy, BatchNorm statistics from data), run by the
    shared loop of ``training/trainer.py`` (``train``).
"""

import jax.numpy as jnp

from memvos_jax.models.family import Family
from memvos_jax.models.stcn import bn_init, checks, convert, inference, loss
from memvos_jax.models.stcn.modeling import STCN
from memvos_jax.training import trainer


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64)))


def _make_settings(**options) -> inference.InferenceSettings:
  if 'top_k' in options:
    options['top_k'] = options['top_k'] or None     # 0: softmax over all memory
  return inference.InferenceSettings(**options)


def _init_state(model, settings, num_objects, size):
  return inference.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def _memory_frames(num_frames, annotated, options):
  every = options.get('mem_every', inference.InferenceSettings.mem_every)
  return inference.memory_writes(num_frames, set(annotated), every)


def train(config, workdir: str, devices=None) -> dict:
  """Supervised training, the official recipe (``python train.py --config configs/stcn.py``):
  the shared loop (``training.trainer``) over STCN's clip unroll and loss."""
  return trainer.train(FAMILY, config, workdir, devices, loss_fn=loss.loss_fn,
                       calibrate=bn_init.calibrate)


FAMILY = Family(
    name='stcn',
    network=STCN,
    build=STCN,
    init_variables=_init_variables,
    abstract_variables=convert.abstract_variables,
    convert=convert.convert,
    make_settings=_make_settings,
    init_state=_init_state,
    step=inference.frame_step,
    memory_frames=_memory_frames,
    bucket_memory=True,
    trainer=train,
    check_config=checks.check_config,
)
