"""Save/restore network variables as orbax checkpoints."""

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
