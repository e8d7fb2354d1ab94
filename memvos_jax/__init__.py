"""memvos_jax: memory-network video object segmentation in JAX/Flax.

Layout: ``models/`` (networks on one backbone and decoder family),
``memory/`` (static-shape memory bank and read), ``inference.py`` (scan over
frames), ``convert/`` (official checkpoints), ``data/`` (clip folders),
``pipeline.py`` (clip-level driver used by ``eval.py``).
"""

__version__ = '0.1.0'
