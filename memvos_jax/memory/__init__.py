"""Static-shape memory: the slot bank (``bank``) and its read (``readout``)."""

from memvos_jax.memory.bank import MemoryBank, init, select_slot, write
from memvos_jax.memory.readout import dot_affinity, l2_affinity, read
