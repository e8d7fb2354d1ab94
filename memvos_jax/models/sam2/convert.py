"""Official SAM 2.1 checkpoints (``sam2.1_hiera_*.pt``: {"model": state_dict}, or a flat .npz) -> Flax.

Strict: every official key lands on a Flax leaf of the right shape and every
leaf is filled (``torch_to_flax``). Leaves that are not Linear/Conv/LayerNorm
weights (position embeddings, learned tokens, layer scales, the random
Fourier matrix) are copied as they are, in the official layout.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert.common import _rename, flax_module_path, torch_to_flax
from memvos_jax.errors import CheckpointError
from memvos_jax.models.sam2.modeling import SAM2

# Official module paths that the Flax modules spell flat.
RENAMES = [('image_encoder.trunk.patch_embed.proj', 'image_encoder.trunk.patch_embed_proj'),
           ('memory_encoder.fuser.layers.', 'memory_encoder.fuser_layers.')]
RENAMES += [(f'image_encoder.neck.convs.{i}.conv', f'image_encoder.neck.convs_{i}_conv')
            for i in range(4)]


def unwrap(state: dict, source: str = 'checkpoint') -> dict:
  """{"model": state_dict} (the release format) or a flat state_dict -> flat dict of arrays."""
  if 'model' in state and isinstance(state['model'], dict):
    state = state['model']
  if not state or not all(hasattr(v, 'shape') for v in state.values()):
    raise CheckpointError(f'{source}: not a SAM 2 state_dict (expected {{"model": state_dict}})')
  return state


def target_shapes(model, image_size: int | None = None):
  """The model's variables as ShapeDtypeStructs (no compute)."""
  s = image_size or model.image_size
  model = model.clone(image_size=s)
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((s, s, 3), jnp.uint8))


def convert(state: dict, model=None, source: str = 'checkpoint') -> dict:
  """Official SAM 2 state_dict -> Flax variables {'params': ...} for ``model`` (default Hiera-T)."""
  if model is None:
    model = SAM2()
  state = unwrap(dict(state), source)
  # A small image size gives the same parameter shapes and a cheap eval_shape.
  target = target_shapes(model, 256)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(target))
  raw, rest = {}, {}
  for name, value in state.items():
    new = _rename(name, RENAMES)
    module, _, leaf = new.rpartition('.')
    dest = ('params',) + (flax_module_path(module) if module else ()) + (leaf,)
    if dest in flat and leaf not in ('bias',) and not (leaf == 'weight' and np.ndim(value) in (2, 4)
                                                      and dest[:-1] + ('kernel',) in flat):
      if tuple(flat[dest].shape) != tuple(np.shape(value)):
        raise CheckpointError(f'{source}: {name} has shape {tuple(np.shape(value))}, expected '
                              f'{tuple(flat[dest].shape)}')
      raw[dest] = np.ascontiguousarray(value, dtype=np.float32)
    else:
      rest[name] = value      # renamed again by torch_to_flax; errors name the official key
  rest_target = flax.traverse_util.unflatten_dict({k: v for k, v in flat.items() if k not in raw})
  out = torch_to_flax(rest, rest_target, RENAMES, source=source)
  merged = flax.traverse_util.flatten_dict(out)
  merged.update(raw)
  return flax.traverse_util.unflatten_dict(merged)
