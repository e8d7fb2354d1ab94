"""Official STCN checkpoints (hkchengrex/STCN ``stcn.pth``) -> Flax variables."""

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert.common import torch_to_flax
from memvos_jax.models.stcn.modeling import STCN

RENAMES = (
    ('key_encoder.res2.', 'key.key_encoder.layer1.'),
    ('key_encoder.', 'key.key_encoder.'),
    ('key_proj.key_proj.', 'key.key_proj.'),
    ('key_comp.', 'key.key_comp.'),
    ('value_encoder.fuser.attention.SpatialGate.spatial.conv.',
     'value.fuser.attention.SpatialGate.spatial.'),
    ('value_encoder.fuser.', 'value.fuser.'),
    ('value_encoder.', 'value.backbone.'),
)


def abstract_variables(model: STCN, num_objects: int = 2, size=(64, 64)):
  """Shapes of the model's variables (no computation)."""
  image = jnp.zeros((1,) + tuple(size) + (3,), jnp.float32)
  masks = jnp.zeros((num_objects,) + tuple(size), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), image, masks)


def convert(state: dict, model: STCN | None = None, source: str = 'checkpoint') -> dict:
  """Official STCN state_dict -> variables for ``memvos_jax.models.stcn.STCN``.

  A stage-0 (static pretraining) value encoder with a 4-channel first conv is
  padded with a zero "other objects" channel, as the official eval scripts do.
  """
  model = model or STCN()
  state = dict(state)
  w = state.get('value_encoder.conv1.weight')
  if w is not None and w.ndim == 4 and w.shape[1] == 4:
    state['value_encoder.conv1.weight'] = np.concatenate(
        [w, np.zeros_like(w[:, :1])], axis=1)
  return torch_to_flax(state, abstract_variables(model), RENAMES, source=source)
