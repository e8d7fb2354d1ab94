"""Strict mapping of a PyTorch state_dict onto a Flax variable tree.

Names: torch ``a.b.0.conv1.weight`` -> Flax path ``a/b_0/conv1`` (numeric
components join their parent with ``_``) after model-specific prefix renames.
Leaves: conv ``weight`` [O, I, kh, kw] -> ``kernel`` [kh, kw, I, O]; linear
``weight`` [O, I] -> ``kernel`` [I, O]; BatchNorm ``weight``/``bias``/
``running_mean``/``running_var`` -> params ``scale``/``bias`` and
batch_stats ``mean``/``var``; ``num_batches_tracked`` is accounted for and
dropped. Every torch key must land on a Flax leaf of the right shape and every
Flax leaf must be filled, or a CheckpointError lists the offending keys.
"""

from typing import Any, Iterable, Mapping

import flax
import numpy as np

from memvos_jax.errors import CheckpointError

_BN_STATS = {'running_mean': 'mean', 'running_var': 'var'}


def flax_module_path(torch_module: str) -> tuple[str, ...]:
  """'a.b.0.conv1' -> ('a', 'b_0', 'conv1')."""
  out: list[str] = []
  for part in torch_module.split('.'):
    if part.isdigit() and out:
      out[-1] = f'{out[-1]}_{part}'
    else:
      out.append(part)
  return tuple(out)


def _rename(name: str, renames: Iterable[tuple[str, str]]) -> str:
  for old, new in renames:
    if name.startswith(old):
      return new + name[len(old):]
  return name


def _list(keys, limit=12):
  keys = sorted(keys)
  more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
  return ', '.join(keys[:limit]) + more


def torch_to_flax(state: Mapping[str, np.ndarray], target: Any,
                  renames: Iterable[tuple[str, str]] = (), source: str = 'checkpoint',
                  ignore: Iterable[str] = ()) -> dict:
  """Map ``state`` onto ``target`` (a variables tree of arrays or ShapeDtypeStructs).

  Args:
    state: flat torch name -> array.
    target: the model's variables, e.g. ``jax.eval_shape(model.init, ...)``.
    renames: ordered (torch prefix, flax prefix) rewrites applied first.
    source: file name for error messages.
    ignore: torch keys that are known to be unused by the network (reported
      by the caller, never silently dropped here).
  Returns:
    A variables dict (``params``, ``batch_stats``) of numpy float32 arrays.
  """
  flat_target = flax.traverse_util.flatten_dict(flax.core.unfreeze(target))
  filled: dict[tuple[str, ...], np.ndarray] = {}
  unexpected, mismatched = [], []
  ignore = set(ignore)

  for name, value in state.items():
    if name in ignore:
      continue
    value = np.asarray(value)
    module, _, leaf = _rename(name, renames).rpartition('.')
    path = flax_module_path(module)
    if leaf == 'num_batches_tracked':
      if ('batch_stats',) + path + ('mean',) in flat_target:
        continue
      unexpected.append(name)
      continue
    if leaf in _BN_STATS:
      dest, arr = ('batch_stats',) + path + (_BN_STATS[leaf],), value
    elif leaf == 'weight' and ('params',) + path + ('kernel',) in flat_target:
      dest = ('params',) + path + ('kernel',)
      if value.ndim == 4:
        arr = value.transpose(2, 3, 1, 0)
      elif value.ndim == 2:
        arr = value.T
      else:
        arr = value
    elif leaf == 'weight':
      dest, arr = ('params',) + path + ('scale',), value
    elif leaf == 'bias':
      dest, arr = ('params',) + path + ('bias',), value
    else:
      unexpected.append(name)
      continue
    if dest not in flat_target:
      unexpected.append(name)
      continue
    if tuple(flat_target[dest].shape) != tuple(arr.shape):
      mismatched.append(f'{name} {tuple(value.shape)} vs expected '
                        f'{tuple(flat_target[dest].shape)} ({"/".join(dest)})')
      continue
    filled[dest] = np.ascontiguousarray(arr, dtype=np.float32)

  missing = ['/'.join(p) for p in flat_target if p not in filled]
  problems = []
  if missing:
    problems.append(f'{len(missing)} missing: {_list(missing)}')
  if unexpected:
    problems.append(f'{len(unexpected)} unexpected: {_list(unexpected)}')
  if mismatched:
    problems.append(f'{len(mismatched)} mis-shaped: {_list(mismatched)}')
  if problems:
    raise CheckpointError(f'{source}: checkpoint does not match the network; '
                          + '; '.join(problems))
  return flax.traverse_util.unflatten_dict(filled)
