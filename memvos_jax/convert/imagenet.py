"""ImageNet classification checkpoints (torchvision layout) -> a backbone's variables.

``load_backbone`` maps a torchvision-layout state_dict (``.pth`` zip or legacy,
or ``.npz``) strictly onto one backbone of a model: the classification head
(``backbones.SPECS[name].head``) is dropped by name, every other tensor must
land on a variable of the right shape and every variable must be filled, or one
CheckpointError names the file and lists the missing, unexpected and
mis-shaped keys. A first convolution with more input channels than the file's
3 (a value encoder's mask channels) takes the file's RGB filters and keeps its
own initial values for the extra channels (the official STCN/STM recipes add
them, freshly initialised, the same way).

``apply_backbone_init`` does this for the encoders a model declares
(``Model.encoders``: encoder name -> (variable path, backbone config key), or
(path, key, own) where ``own`` names modules directly under that path that the
file does not hold and that keep their initial values, e.g. AFB-URR's mask
convolutions beside the memory encoder's stem), from
``config.training.backbone_init``: one file for every encoder, or
``ENCODER=FILE,ENCODER=FILE`` for some of them.
"""

import os
from typing import Any

import flax
import numpy as np

from memvos_jax.convert.common import flax_module_path, torch_to_flax
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import CheckpointError, InputError
from memvos_jax.nn import backbones


def _subtree(variables, path):
  out = {}
  for col, tree in variables.items():
    node = tree
    for p in path:
      if not isinstance(node, dict) or p not in node:
        node = None
        break
      node = node[p]
    if node is not None:
      out[col] = node
  return out


def load_backbone(path: str, name: str, current, own=()) -> dict:
  """File ``path`` -> variables for backbone ``name`` shaped as ``current`` (arrays).

  ``current``: the backbone's own variables ({'params': ..., 'batch_stats': ...}),
  whose values only matter for the extra input channels of the first conv and for
  the modules named in ``own`` (top-level names of ``current`` that are not in the
  file: returned unchanged).
  """
  if own:
    kept = {col: {m: tree[m] for m in own if m in tree} for col, tree in current.items()}
    rest = {col: {m: v for m, v in tree.items() if m not in own}
            for col, tree in current.items()}
    loaded = load_backbone(path, name, rest)
    return {col: {**loaded.get(col, {}), **kept.get(col, {})}
            for col in set(loaded) | {c for c, t in kept.items() if t}}
  spec = backbones.SPECS[name]
  state = load_state_dict(path)
  state = {k: v for k, v in state.items() if not k.startswith(spec.head)}
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(current))
  first = spec.first_conv
  stem = ('params',) + flax_module_path(first.rpartition('.')[0]) + ('kernel',)
  if first in state and stem in flat:
    w = np.asarray(state[first])                        # [O, I, kh, kw]
    own = np.asarray(flat[stem]).transpose(3, 2, 0, 1)  # [O, I', kh, kw]
    if w.ndim == 4 and own.shape[1] > w.shape[1] and own.shape[0] == w.shape[0] \
        and own.shape[2:] == w.shape[2:]:
      state[first] = np.concatenate([w, own[:, w.shape[1]:]], axis=1)
  try:
    return torch_to_flax(state, current, source=path)
  except CheckpointError as e:
    raise CheckpointError(f'{e} (as ImageNet weights for backbone {name!r}; '
                          f'it takes {spec.imagenet or "no known ImageNet file"})') from None


def parse(spec: str, encoders) -> dict[str, str]:
  """``config.training.backbone_init`` -> {encoder: file}."""
  if not spec:
    return {}
  if '=' not in spec:
    return {enc: spec for enc in encoders}
  out = {}
  for item in spec.split(','):
    enc, sep, path = item.partition('=')
    enc = enc.strip()
    if not sep or enc not in encoders or not path:
      raise InputError('config.training.backbone_init',
                       f'{item!r} is not ENCODER=FILE with an encoder of this model '
                       f'({", ".join(encoders)}), nor one file for all')
    out[enc] = path.strip()
  return out


def apply_backbone_init(config, model, variables) -> tuple[Any, list[str]]:
  """Loads ``config.training.backbone_init`` into ``variables``; returns them and a log line per file."""
  encoders = getattr(type(model), 'encoders', {})
  files = parse(config.training.backbone_init, encoders)
  if files and not encoders:
    raise InputError('config.training.backbone_init',
                     f'model {config.model!r} declares no backbone encoders')
  variables = flax.core.unfreeze(variables)
  lines = []
  for enc, path in files.items():
    if not os.path.exists(path):
      raise InputError(path, f'backbone checkpoint for the {enc} encoder not found')
    where, key, *own = encoders[enc]
    name = config.network[key]
    loaded = load_backbone(path, name, _subtree(variables, where), own[0] if own else ())
    for col, tree in loaded.items():
      node = variables[col]
      for p in where[:-1]:
        node = node[p]
      node[where[-1]] = tree
    lines.append(f'{enc} encoder ({name}) from ImageNet weights {path}')
  return variables, lines
