"""Official STM checkpoints (seoungwugoh/STM ``STM_weights.pth``) -> Flax variables.

The release was saved through ``nn.DataParallel``: every key carries a
``module.`` prefix, accepted with or without it. The memory encoder's three
first convolutions (image, mask, other objects; bias-free, summed) become one
5-channel conv. The encoders' ``mean``/``std`` buffers must be the ImageNet
statistics the inference core normalises with; they carry no weights.
"""

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert.common import torch_to_flax
from memvos_jax.errors import CheckpointError
from memvos_jax.inference.core import IMAGENET_MEAN, IMAGENET_STD
from memvos_jax.models.stm.modeling import STM

PREFIX = 'module.'
RENAMES = tuple(
    (f'{enc}.{old}.', f'{new_enc}.{new}.')
    for enc, new_enc in (('Encoder_Q', 'query_encoder'), ('Encoder_M', 'memory_encoder'))
    for old, new in (('res2', 'layer1'), ('res3', 'layer2'), ('res4', 'layer3'))
) + (
    ('Encoder_Q.', 'query_encoder.'),
    ('Encoder_M.', 'memory_encoder.'),
    ('KV_Q_r4.', 'query_kv.'),
    ('KV_M_r4.', 'memory_kv.'),
    ('Decoder.', 'decoder.'),
)
_FIRST_CONVS = ('Encoder_M.conv1.weight', 'Encoder_M.conv1_m.weight', 'Encoder_M.conv1_o.weight')
_BUFFERS = {f'{enc}.{name}': ref for enc in ('Encoder_Q', 'Encoder_M')
            for name, ref in (('mean', IMAGENET_MEAN), ('std', IMAGENET_STD))}


def abstract_variables(model: STM, num_objects: int = 2, size=(64, 64)):
  """Shapes of the model's variables (no computation)."""
  image = jnp.zeros((1,) + tuple(size) + (3,), jnp.float32)
  masks = jnp.zeros((num_objects,) + tuple(size), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), image, masks)


def strip_prefix(state: dict) -> dict:
  """Drop DataParallel's ``module.`` from every key that has it."""
  return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in state.items()}


def convert(state: dict, model: STM | None = None, source: str = 'checkpoint') -> dict:
  """Official STM state_dict -> variables for ``memvos_jax.models.stm.STM``.

  Strict: missing, unexpected and mis-shaped keys (the buffers and the
  three first convolutions included) raise one CheckpointError listing them.
  """
  model = model or STM()
  state = strip_prefix(state)
  problems = []

  # Normalisation buffers: checked, then set aside.
  missing_buffers = [k for k in _BUFFERS if k not in state]
  for name, ref in _BUFFERS.items():
    if name in state:
      value = np.asarray(state.pop(name), np.float32).reshape(-1)
      if value.shape != ref.shape or not np.allclose(value, ref, atol=1e-6):
        problems.append(f'{name} is {value.tolist()}, expected the ImageNet '
                        f'statistics {ref.tolist()}')

  # conv1(image) + conv1_m(mask) + conv1_o(others) == one conv over the 5 channels.
  firsts = [state.get(k) for k in _FIRST_CONVS]
  missing_first = [k for k, w in zip(_FIRST_CONVS, firsts) if w is None]
  if not missing_first:
    shapes = [np.shape(w) for w in firsts]
    if all(len(s) == 4 for s in shapes) and len({(s[0],) + s[2:] for s in shapes}) == 1:
      for k in _FIRST_CONVS[1:]:
        del state[k]
      state[_FIRST_CONVS[0]] = np.concatenate([np.asarray(w) for w in firsts], axis=1)
    else:
      problems.append('first convolutions of Encoder_M do not stack: '
                      + ', '.join(f'{k} {s}' for k, s in zip(_FIRST_CONVS, shapes)))
      for k in _FIRST_CONVS:
        state.pop(k)
  else:
    for k in _FIRST_CONVS:   # reported as missing below; the rest must not be "unexpected"
      state.pop(k, None)
  stacked = [] if _FIRST_CONVS[0] in state else ['params/memory_encoder/conv1/kernel']

  missing = missing_buffers + missing_first
  try:
    variables = torch_to_flax(state, abstract_variables(model), RENAMES, source=source,
                              reported=stacked)
  except CheckpointError as e:
    extra = (f'; also missing: {", ".join(missing)}' if missing else '') + \
            ''.join(f'; {p}' for p in problems)
    raise CheckpointError(f'{e}{extra}') from None
  if missing or problems:
    parts = ([f'{len(missing)} missing: {", ".join(missing)}'] if missing else []) + problems
    raise CheckpointError(f'{source}: checkpoint does not match the network; '
                          + '; '.join(parts))
  return variables
