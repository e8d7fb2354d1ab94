"""Strict mapping of a PyTorch state_dict onto a Flax variable tree.

Names: torch ``a.b.0.conv1.weight`` -> Flax path ``a/b_0/conv1`` (numeric
components join their parent with ``_``) after model-specific prefix renames.
Leaves: conv ``weight`` [O, I, kh, kw] -> ``kernel`` [kh, kw, I, O]; linear
``weight`` [O, I] -> ``kernel`` [I, O]; BatchNorm ``weight``/``bias``/
``running_mean``/``running_var`` -> params ``scale``/``bias`` and
batch_stats ``mean``/``var``; ``num_batches_tracked`` is accounted for and
dropped. Every torch key must land on a Flax leaf of the right shape and every
Flax leaf must be filled, or a CheckpointError lists the offending keys, all
in the checkpoint's own (torch) names: a missing leaf is named by the torch
key that would fill it (``torch_name``), a mis-shaped key only as mis-shaped.
"""

import re
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


_TORCH_LEAF = {'kernel': 'weight', 'scale': 'weight', 'mean': 'running_mean',
               'var': 'running_var'}


def _split_indices(component: str) -> str:
  """'layer2_0' -> 'layer2.0', 'mlp_1' -> 'mlp.1' (inverse of ``flax_module_path``)."""
  tail = []
  while (m := re.search(r'_(\d+)$', component)):
    tail.insert(0, m.group(1))
    component = component[:m.start()]
  return '.'.join([component] + tail)


def _forward_module(name: str, renames) -> tuple[str, ...]:
  """The Flax module path a torch key ``name`` lands in (``torch_to_flax``'s rule)."""
  module = _rename(name, renames).rpartition('.')[0]
  return flax_module_path(module) if module else ()


def module_prefixes(keys: Iterable[str]) -> set[tuple[str, ...]]:
  """Every dotted module prefix of the torch ``keys`` ('a.b.w' -> ('a',), ('a', 'b'))."""
  return {tuple(k.split('.')[:i]) for k in keys for i in range(1, k.count('.') + 1)}


def torch_name(dest: tuple[str, ...], renames: Iterable[tuple[str, str]] = (),
               prefixes: set[tuple[str, ...]] = frozenset()) -> str:
  """The torch key that would fill the Flax leaf ``dest`` (collection, *module, leaf).

  Candidates (indices split or not, each rename undone) are checked by mapping
  them forward again; among those that map back, the one sharing the longest
  module prefix with the checkpoint's keys (``module_prefixes``) wins: its
  naming style. The Flax path is returned when no candidate maps back.
  """
  renames = tuple(renames)
  _, *module, leaf = dest
  torch_leaf = _TORCH_LEAF.get(leaf, leaf)
  candidates = []
  for parts in ([_split_indices(c) for c in module], module):   # split indices first
    name = '.'.join(list(parts) + [torch_leaf])
    candidates += [old + name[len(new):] for old, new in renames if name.startswith(new)]
    candidates.append(name)
  good = [c for c in dict.fromkeys(candidates) if _forward_module(c, renames) == tuple(module)]
  if not good:
    return '/'.join(dest)

  def shared(name):
    parts = tuple(name.split('.')[:-1])
    return max((i for i in range(len(parts) + 1) if parts[:i] in prefixes), default=0)
  return max(good, key=shared)    # max keeps the first of equals


def _list(keys, limit=12):
  keys = sorted(keys)
  more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
  return ', '.join(keys[:limit]) + more


def torch_to_flax(state: Mapping[str, np.ndarray], target: Any,
                  renames: Iterable[tuple[str, str]] = (), source: str = 'checkpoint',
                  ignore: Iterable[str] = (), reported: Iterable[str] = ()) -> dict:
  """Map ``state`` onto ``target`` (a variables tree of arrays or ShapeDtypeStructs).

  Args:
    state: flat torch name -> array.
    target: the model's variables, e.g. ``jax.eval_shape(model.init, ...)``.
    renames: ordered (torch prefix, flax prefix) rewrites applied first.
    source: file name for error messages.
    ignore: torch keys that are known to be unused by the network (reported
      by the caller, never silently dropped here).
    reported: Flax leaves ('params/a/b/kernel') left unfilled whose torch keys
      the caller reports itself (not listed again as missing).
  Returns:
    A variables dict (``params``, ``batch_stats``) of numpy float32 arrays.
  """
  flat_target = flax.traverse_util.flatten_dict(flax.core.unfreeze(target))
  filled: dict[tuple[str, ...], np.ndarray] = {}
  unexpected, mismatched = [], []
  renames = tuple(renames)
  ignore = set(ignore)
  accounted = {tuple(r.split('/')) for r in reported}

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
                        f'{tuple(flat_target[dest].shape)}')
      accounted.add(dest)
      continue
    filled[dest] = np.ascontiguousarray(arr, dtype=np.float32)

  unfilled = [p for p in flat_target if p not in filled and p not in accounted]
  prefixes = module_prefixes(state) if unfilled else set()
  missing = [torch_name(p, renames, prefixes) for p in unfilled]
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
