"""The official ``sam2.build_sam`` import path: ``build_sam2_video_predictor`` on memvos_jax.

    from memvos_jax.sam2 import build_sam2_video_predictor   # for: from sam2.build_sam import ...

The code lives with the rest of SAM 2 in ``memvos_jax/models/sam2/builder.py``;
this module keeps the official entry point importable where it was.
"""

from memvos_jax.models.sam2.builder import (CONFIGS, OVERRIDABLE, build_sam2_video_predictor,
                                            config_size)

__all__ = ['CONFIGS', 'OVERRIDABLE', 'build_sam2_video_predictor', 'config_size']
