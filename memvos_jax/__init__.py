"""memvos_jax: memory-network video object segmentation in JAX/Flax.

Layout: ``models/`` (networks on one backbone and decoder family),
``memory/`` (static-shape memory bank and read), ``inference.py`` (scan over
frames), ``convert/`` (official checkpoints), ``data/`` (clip folders and
training sources), ``families/`` (model registry), ``training/``,
``weights/`` (the shipped default model), ``pipeline.py`` (clip-level driver
used by ``eval.py``).

``memvos_jax.load()`` is the shipped default model; ``memvos_jax.load('stcn',
'stcn.pth')`` an official checkpoint.
"""

__version__ = '0.1.0'


def load(*args, **kwargs):
  """``memvos_jax.api.load``: a Segmenter (no arguments: the shipped default model)."""
  from memvos_jax import api
  return api.load(*args, **kwargs)
