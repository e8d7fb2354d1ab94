"""The official ``sam2.sam2_video_predictor`` import path: the SAM 2 video predictor.

    from memvos_jax.sam2_predictor import Sam2Predictor, Sam2Settings

The code lives with the rest of SAM 2 in ``memvos_jax/models/sam2/predictor.py``;
this module keeps the predictor importable where it was.
"""

from memvos_jax.models.sam2.predictor import (FrameOut, MaskLogits, ObjectState, Sam2Predictor,
                                              Sam2Settings, VideoState)

__all__ = ['FrameOut', 'MaskLogits', 'ObjectState', 'Sam2Predictor', 'Sam2Settings', 'VideoState']
