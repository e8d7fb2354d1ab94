"""RPM-Net checkpoints: Flax-path ``.npz`` files read strictly (no official weights exist).

No official RPM-Net code or weights exist, so there is no torch converter:
checkpoints are the orbax folders written by training
(``Family.load_variables`` reads them against ``abstract_variables``)
or ``.npz`` files written by ``save_npz`` (keys are Flax paths,
``params/embedding/conv1/kernel``), read strictly: missing, unexpected or
mis-shaped keys raise CheckpointError.
"""

import flax
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.errors import CheckpointError
import memvos_jax.models.rpm.modeling as rpm


def abstract_variables(model):
  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), x, x)


def _flat(variables) -> dict:
  return {'/'.join(k): v for k, v in flax.traverse_util.flatten_dict(variables).items()}


def save_npz(path, variables) -> None:
  """Write ``variables`` as an .npz that ``convert`` (and eval.py) reads."""
  np.savez(path, **{k: np.asarray(v) for k, v in _flat(variables).items()})


def convert(state: dict, model=None, source: str = 'checkpoint') -> dict:
  """Flax-path state dict (``save_npz``) -> variables, strictly checked."""
  model = model if model is not None else rpm.RPMNet()
  target = _flat(abstract_variables(model))
  missing = sorted(set(target) - set(state))
  unexpected = sorted(set(state) - set(target))
  mis = sorted(f'{k} {tuple(np.shape(state[k]))} vs {tuple(target[k].shape)}'
               for k in set(state) & set(target)
               if tuple(np.shape(state[k])) != tuple(target[k].shape))
  problems = [f'{len(v)} {name}: {", ".join(v[:8])}{" ..." if len(v) > 8 else ""}'
              for name, v in (('missing', missing), ('unexpected', unexpected),
                              ('mis-shaped', mis)) if v]
  if problems:
    raise CheckpointError(f'{source}: checkpoint does not match the RPM-Net network '
                          f'(no official RPM-Net weights exist; use a training export); '
                          + '; '.join(problems))
  flat = {tuple(k.split('/')): np.asarray(state[k], np.float32) for k in target}
  return flax.traverse_util.unflatten_dict(flat)
