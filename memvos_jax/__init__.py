"""memvos_jax: memory-network video object segmentation in JAX/Flax.

Layout: ``models/`` (networks on one backbone and decoder family),
``memory/`` (static-shape memory bank and read), ``inference.py`` (scan over
frames), ``convert/`` (official checkpoints), ``data/`` (clip folders),
``pipeline.py`` (clip-level driver used by ``eval.py``).
"""

__version__ = '0.1.0'


def load(*args, **kwargs):
  """``memvos_jax.api.load``: a Segmenter for a model name and checkpoint."""
  from memvos_jax import api
  return api.load(*args, **kwargs)
