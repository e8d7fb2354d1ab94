"""AFB-URR (Liang et al., NeurIPS 2020): everything that is AFB-URR's own, and its ``FAMILY``.

  * ``modeling``: the network (encoders, key-value projections);
  * ``urr``: the uncertain-region refinement decoder;
  * ``inference``: the per-frame scan step over the adaptive feature bank
    (``memory.adaptive``: merge + LFU);
  * ``convert``: the official release -> Flax variables;
  * ``checks``: its config keys, checked before training builds anything;
  * ``unroll``, ``loss``, ``bn_init``: training (the official clip forward over a
    bank of frame 0, cross-entropy + lu * uncertainty, BatchNorm statistics from
    data), run by the shared loop of ``training/trainer.py`` (``train``).
"""

import jax.numpy as jnp

from memvos_jax.models.afb_urr import bn_init, checks, convert, inference, loss
from memvos_jax.models.afb_urr.modeling import AFBURR
from memvos_jax.models.family import Family
from memvos_jax.training import trainer


def _init_variables(model, rng):
  return model.init(rng, jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 64, 64)))


def _init_state(model, settings, num_objects, size):
  return inference.init_state(settings, num_objects, size, model.key_dim, model.value_dim)


def train(config, workdir: str, devices=None) -> dict:
  """Supervised training, the official recipe (``python train.py --config configs/afb_urr.py``):
  the shared loop (``training.trainer``) over AFB-URR's clip forward and loss."""
  return trainer.train(FAMILY, config, workdir, devices, loss_fn=loss.loss_fn,
                       calibrate=bn_init.calibrate)


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
    trainer=train,
    check_config=checks.check_config,
)
