"""DAVIS J&F evaluation (semi-supervised), matching the official davis2017-evaluation.

``region`` (J), ``boundary`` (F, seg2bmap, disk), ``summary`` (Mean/Recall/Decay,
tables, CSV), ``davis`` (folders, validation, protocol). The command line is
``python -m memvos_jax evaluate`` (``memvos_jax/apps/evaluate.py``).
"""

from memvos_jax.metrics.boundary import boundary_f, boundary_radius, disk, f_measure, seg2bmap
from memvos_jax.metrics.davis import evaluate_davis, score_frames, score_sequence
from memvos_jax.metrics.region import iou, region_similarity
from memvos_jax.metrics.summary import decay_bins, global_row, statistics

__all__ = [
    'boundary_f', 'boundary_radius', 'decay_bins', 'disk', 'evaluate_davis', 'f_measure',
    'global_row', 'iou', 'region_similarity', 'score_frames', 'score_sequence', 'seg2bmap',
    'statistics',
]
