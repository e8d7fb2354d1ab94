"""Save/restore network variables: orbax folders, and flat Flax ``.npz`` files.

The ``.npz`` form (one array per variable, named by its path such as
``params/key/key_encoder/conv1/kernel``) is how trained weights ship inside
the package (``memvos_jax/weights``): one small file, no orbax metadata. It
is read strictly: a missing, unexpected or mis-shaped entry is an error that
lists the entries.
"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from memvos_jax.errors import CheckpointError


def save_variables(path: str, variables) -> str:
  """Write ``variables`` (a pytree of arrays) to the orbax folder ``path``."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(path, jax.tree.map(np.asarray, variables), force=True)
  return path


def restore_variables(path: str, target=None):
  """Read variables written by ``save_variables``; shapes checked against ``target``."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f'{path}: not an orbax checkpoint folder')
  with ocp.StandardCheckpointer() as ckpt:
    try:
      return ckpt.restore(path, target) if target is not None else ckpt.restore(path)
    except (ValueError, KeyError) as e:  # structure/shape mismatch
      raise CheckpointError(f'{path}: checkpoint does not match the network: {e}') from e


FLAX_NPZ_PREFIXES = ('params/', 'batch_stats/')


def _flat(tree, prefix=''):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}/'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def is_flax_npz(path: str) -> bool:
  """True for a ``.npz`` written by ``save_npz`` (not an official state_dict)."""
  if not str(path).endswith('.npz') or not os.path.isfile(path):
    return False
  with np.load(path) as z:
    return bool(z.files) and all(f.startswith(FLAX_NPZ_PREFIXES) for f in z.files)


def save_npz(path: str, variables) -> str:
  """Write ``{'params', 'batch_stats'}`` as a flat float32 ``.npz``."""
  flat = {k: np.asarray(v, np.float32) for k, v in _flat(jax.device_get(variables)).items()}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez_compressed(path, **flat)
  return os.path.abspath(path)


def load_npz(path: str, target):
  """Read a ``save_npz`` file strictly against ``target`` (a pytree with the shapes)."""
  want = _flat(target)
  with np.load(path) as z:
    have = {k: z[k] for k in z.files}
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  shaped = sorted(k for k in set(want) & set(have)
                  if tuple(have[k].shape) != tuple(want[k].shape))
  if missing or extra or shaped:
    parts = []
    for what, keys in (('missing', missing), ('unexpected', extra), ('mis-shaped', shaped)):
      if keys:
        parts.append(f'{len(keys)} {what} ({", ".join(keys[:5])}{", ..." if len(keys) > 5 else ""})')
    raise CheckpointError(f'{path}: weights do not match the network: {"; ".join(parts)}')

  def build(tree, prefix=''):
    return {k: build(v, f'{prefix}{k}/') if isinstance(v, dict)
            else have[f'{prefix}{k}'].astype(np.float32) for k, v in tree.items()}
  return build(target)
