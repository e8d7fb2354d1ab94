"""Networks: shared backbone/decoder blocks and the per-paper models."""

from memvos_jax.models.aggregate import aggregate
from memvos_jax.models.stcn import STCN
