"""memvos_jax: memory-network video object segmentation in JAX/Flax.

Layout (docs/architecture.md), lower layers first: the shared parts
``nn/`` (layers, backbones, decoder), ``memory/`` (static-shape memory bank
and reads), ``data/`` and ``metrics/``, ``convert/`` (checkpoint machinery),
``inference/`` (the scan core and the clip driver), ``training/`` (the
training loop); then one folder per model, ``models/<name>/`` (network,
per-frame step, converter, training pieces, its ``FAMILY``); ``registry``
(the one list of models); ``api.py`` and the command-line ``apps/``.
``configs/`` holds the configs, ``weights/`` the shipped default model.

``memvos_jax.load()`` is the shipped default model; ``memvos_jax.load('stcn',
'stcn.pth')`` an official checkpoint.
"""

__version__ = '0.1.0'


def load(*args, **kwargs):
  """``memvos_jax.api.load``: a Segmenter (no arguments: the shipped default model)."""
  from memvos_jax import api
  return api.load(*args, **kwargs)


def export(*args, **kwargs):
  """``memvos_jax.apps.export.export``: the streaming step as a StableHLO artifact folder."""
  from memvos_jax.apps import export as _export
  return _export.export(*args, **kwargs)
