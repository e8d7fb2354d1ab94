"""SAM 2.1 (Hiera image encoder, prompt encoder, mask decoder, memory encoder and attention)."""

from memvos_jax.models.sam2.sam2 import NO_OBJ_SCORE, SAM2, TRUNKS, trunk_items

__all__ = ['NO_OBJ_SCORE', 'SAM2', 'TRUNKS', 'trunk_items']
