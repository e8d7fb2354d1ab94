"""memvos_jax: memory-network video object segmentation in JAX/Flax.

Layout, lower layers first: ``models/`` (networks on one backbone and
decoder family), ``memory/`` (static-shape memory bank and read),
``inference/`` (the shared scan core, one per-frame core per model, the
clip driver), ``convert/`` (official checkpoints), ``families/`` (one
declaration per model; building and loading), then ``api.py``, the
command-line apps and ``training/``; ``data/`` (clip folders and training
sources), ``weights/`` (the shipped default model).

``memvos_jax.load()`` is the shipped default model; ``memvos_jax.load('stcn',
'stcn.pth')`` an official checkpoint.
"""

__version__ = '0.1.0'


def load(*args, **kwargs):
  """``memvos_jax.api.load``: a Segmenter (no arguments: the shipped default model)."""
  from memvos_jax import api
  return api.load(*args, **kwargs)
