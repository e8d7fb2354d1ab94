"""Save/restore network variables: orbax folders, and flat Flax ``.npz`` files.

The ``.npz`` form (one array per variable, named by its path such as
``params/key/key_encoder/conv1/kernel``) is how trained weights ship inside
the package (``memvos_jax/weights``): one small file, no orbax metadata. It
is read strictly: a missing, unexpected or mis-shaped entry is an error that
lists the entries.

A damaged file or folder is one CheckpointError line naming it: a ``.npz``
cut short, empty or with an entry that fails its CRC or header; an orbax
folder with a file missing, cut short or corrupt (``_METADATA``,
``manifest.ocdbt``, the array data under ``d/``), or a folder that is no
checkpoint (with a hint for a training run's step folder or workdir). Orbax
keeps no checksum of the array bytes: bytes overwritten inside the array
data of an orbax folder can go unnoticed.
"""

from collections.abc import Mapping
import json
import os
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts

from memvos_jax.convert.torch_pickle import (damaged, load_npz_arrays, not_a_checkpoint,
                                             zip_member_names)
from memvos_jax.errors import CheckpointError


def save_variables(path: str, variables) -> str:
  """Write ``variables`` (a pytree of arrays) to the orbax folder ``path``."""
  path = os.path.abspath(path)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(path, jax.tree.map(np.asarray, variables), force=True)
  return path


# An orbax pytree folder's index files (without _METADATA, orbax reads the names from
# manifest.ocdbt, the index of the array data).
_ORBAX_INDEX = ('_METADATA', 'manifest.ocdbt')
# What else an orbax folder holds: its absence of an index means files were deleted.
_ORBAX_OTHER = ('d', '_CHECKPOINT_METADATA', 'commit_success.txt', '_sharding')


def _check_orbax_folder(path: str) -> set | None:
  """CheckpointError unless ``path`` looks like an orbax pytree folder with a readable
  ``_METADATA``; returns the variable names ``_METADATA`` lists ('params/a/kernel', ...),
  or None without one (orbax then reads the names from the array index)."""
  if not os.path.isdir(path):
    raise not_a_checkpoint(path, 'no such folder (an orbax checkpoint is a folder)')
  names = set(os.listdir(path))
  if not names & set(_ORBAX_INDEX):
    if os.path.isdir(os.path.join(path, 'variables')):
      raise not_a_checkpoint(path, 'a training checkpoint step folder: pass its variables '
                             f'folder, --config.checkpoint={os.path.join(path, "variables")}')
    steps = os.path.join(path, 'checkpoints')
    if os.path.isdir(steps):
      done = sorted((int(n) for n in os.listdir(steps) if n.isdigit()), reverse=True)
      where = (os.path.join(steps, str(done[0]), 'variables') if done
               else os.path.join(steps, '<step>', 'variables'))
      raise not_a_checkpoint(path, f'a training workdir: pass a checkpoint\'s variables '
                             f'folder, --config.checkpoint={where}')
    if names & set(_ORBAX_OTHER) or any(n.startswith('ocdbt.process_') for n in names):
      raise damaged(path, 'an orbax checkpoint folder without its _METADATA and '
                    'manifest.ocdbt (deleted?)')
    raise not_a_checkpoint(path, 'the folder is empty' if not names else
                           'a folder without orbax\'s _METADATA or manifest.ocdbt (expected '
                           'one written by python -m memvos_jax.convert or a training run\'s '
                           '<workdir>/checkpoints/<step>/variables)')
  if '_METADATA' not in names:
    return None
  try:
    with open(os.path.join(path, '_METADATA'), 'rb') as f:
      meta = json.loads(f.read().decode('utf-8'))
    tree = meta['tree_metadata']
    variables = {'/'.join(str(k['key']) for k in entry['key_metadata'])
                 for entry in tree.values()
                 if not entry.get('value_metadata', {}).get('skip_deserialize')}
  except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
    raise damaged(path, f'its _METADATA is not valid orbax metadata (cut short or '
                  f'overwritten? {type(e).__name__}: {e})') from None
  if meta.get('use_ocdbt') and 'manifest.ocdbt' not in names:
    raise damaged(path, 'its manifest.ocdbt (the index of the array data) is missing')
  return variables


def _empty_collections(path: str) -> list:
  """Top-level names that ``_METADATA`` lists as empty containers (e.g. 'batch_stats': {})."""
  try:
    with open(os.path.join(path, '_METADATA'), 'rb') as f:
      tree = json.loads(f.read().decode('utf-8'))['tree_metadata']
    return sorted({str(e['key_metadata'][0]['key']) for e in tree.values()
                   if len(e['key_metadata']) == 1
                   and e.get('value_metadata', {}).get('skip_deserialize')})
  except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError):
    return []   # no (readable) _METADATA: _check_orbax_folder has said what is wrong


_STATUS = {'NOT_FOUND': 'missing', 'OUT_OF_RANGE': 'cut short', 'DATA_LOSS': 'corrupt'}


def _restore_problem(path: str, e: Exception, key: str = '') -> CheckpointError:
  """A failed read of a folder that passed ``_check_orbax_folder``: which file (or, for
  tensorstore errors naming none, which array ``key``), and how."""
  text = ' '.join(str(e).split())
  status = re.match(r'([A-Z_]+): ', text)
  state = _STATUS.get(status.group(1), 'unreadable') if status else 'unreadable'
  files = [f for f in re.findall(r'local file "([^"]+)"', text) if not f.endswith('/')]
  detail = re.sub(r' \[tensorstore_spec.*', '', text.split(f'"{files[-1]}"')[-1] if files
                  else text[status.end():] if status else text).lstrip(': ')
  detail = f' ({detail[:160]})' if detail else ''
  if files:
    return damaged(path, f'{os.path.relpath(files[-1], path)} is {state}{detail}')
  if key:
    return damaged(path, f'the array data of {key} is {state}{detail}')
  if 'OCDBT' in text and not os.path.exists(os.path.join(path, 'manifest.ocdbt')):
    return damaged(path, 'manifest.ocdbt is missing')
  return damaged(path, f'orbax cannot restore it ({type(e).__name__}: {text[:200]})')


def _check_array_data(path: str) -> None:
  """Read every value of the folder's OCDBT array store (the index and the data files
  under ``d/``) with tensorstore: a file missing, cut short or failing its checksum is a
  CheckpointError here, before orbax's concurrent reads (which print tracebacks of their
  pending tasks when one fails)."""
  try:
    kv = ts.KvStore.open({'driver': 'ocdbt',
                          'base': {'driver': 'file', 'path': path + os.sep}}).result()
    keys = kv.list().result()
  except Exception as e:
    raise _restore_problem(path, e) from None
  for key in keys:
    name = key.decode(errors='replace')
    try:
      found = kv.read(key).result().state == 'value'
    except Exception as e:
      raise _restore_problem(path, e, name) from None
    if not found:
      raise damaged(path, f'the array data of {name} is missing')


def _shape(leaf) -> tuple:
  return tuple(leaf.shape) if hasattr(leaf, 'shape') else np.shape(leaf)


def _shapes(tree) -> dict:
  """'a/b/c' -> shape of every leaf of a (nested dict) variables or metadata tree."""
  out = {}
  for keys, leaf in jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: not isinstance(x, (Mapping, list, tuple)))[0]:
    name = '/'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in keys)
    out[name] = _shape(leaf)
  return out


def _mismatch(have: dict, want: dict) -> str:
  """'' when the names and shapes agree, else '1 missing (...); 2 unexpected (...); ...'."""
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  shaped = sorted(k for k in set(want) & set(have) if have[k] != want[k])
  parts = []
  for what, keys in (('missing', missing), ('unexpected', extra), ('mis-shaped', shaped)):
    if keys:
      parts.append(f'{len(keys)} {what} ({", ".join(keys[:5])}{", ..." if len(keys) > 5 else ""})')
  return '; '.join(parts)


def restore_variables(path: str, target=None):
  """Read variables written by ``save_variables`` (or a training run's
  ``checkpoints/<step>/variables``); names and shapes checked against ``target``
  (a pytree of arrays, or a function returning one: called once the folder is
  checked, so that a damaged folder is reported before the target is built).

  A folder that is damaged or no checkpoint, or whose variables do not match
  ``target``, is a CheckpointError naming it.
  """
  path = os.path.abspath(path)
  listed = _check_orbax_folder(path)
  if os.path.isfile(os.path.join(path, 'manifest.ocdbt')):
    _check_array_data(path)
  target = target() if callable(target) else target
  want = _shapes(target) if target is not None else None
  if want is not None and listed is not None:    # before orbax, whose own error is long
    problem = _mismatch({k: want.get(k, ()) for k in listed}, want)
    if problem:
      raise CheckpointError(f'{path}: checkpoint does not match the network: {problem}')
  # Empty collections on disk that the target lacks (a training checkpoint of a network
  # without BatchNorm holds 'batch_stats': {}) are read as such and dropped.
  extra = [k for k in _empty_collections(path)
           if target is not None and isinstance(target, Mapping) and k not in target]
  with ocp.StandardCheckpointer() as ckpt:
    try:
      out = (ckpt.restore(path, {**target, **{k: {} for k in extra}}) if target is not None
             else ckpt.restore(path))
    except Exception as e:  # a file missing, cut short or corrupt
      raise _restore_problem(path, e) from None
  for k in extra:
    out.pop(k, None)
  if want is not None and _mismatch(_shapes(out), want):   # orbax keeps the file's shapes
    raise CheckpointError(f'{path}: checkpoint does not match the network: '
                          f'{_mismatch(_shapes(out), want)}')
  return out


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
  """True for a ``.npz`` written by ``save_npz`` (not an official state_dict); a
  ``.npz`` that is damaged or no zip is a CheckpointError naming it."""
  if not str(path).endswith('.npz') or not os.path.isfile(path):
    return False
  names = zip_member_names(path)
  return bool(names) and all(f.startswith(FLAX_NPZ_PREFIXES) for f in names)


def save_npz(path: str, variables) -> str:
  """Write ``{'params', 'batch_stats'}`` as a flat float32 ``.npz``."""
  flat = {k: np.asarray(v, np.float32) for k, v in _flat(jax.device_get(variables)).items()}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez_compressed(path, **flat)
  return os.path.abspath(path)


def load_npz(path: str, target):
  """Read a ``save_npz`` file strictly against ``target`` (a pytree with the shapes, or a
  function returning one: called once every entry of the file has been read)."""
  have = load_npz_arrays(path)    # a damaged file: CheckpointError naming it and the entry
  target = target() if callable(target) else target
  want = _flat(target)
  problem = _mismatch({k: _shape(v) for k, v in have.items()},
                      {k: _shape(v) for k, v in want.items()})
  if problem:
    raise CheckpointError(f'{path}: weights do not match the network: {problem}')

  def build(tree, prefix=''):
    return {k: build(v, f'{prefix}{k}/') if isinstance(v, dict)
            else have[f'{prefix}{k}'].astype(np.float32) for k, v in tree.items()}
  return build(target)
