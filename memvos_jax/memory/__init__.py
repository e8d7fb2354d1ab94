"""Static-shape memory: the slot bank (``bank``), its read (``readout``) and the
adaptive feature bank of AFB-URR with LFU removal (``adaptive``)."""

from memvos_jax.memory.bank import MemoryBank, init, select_slot, write
from memvos_jax.memory.readout import dot_affinity, l2_affinity, read
from memvos_jax.memory import adaptive
from memvos_jax.memory.adaptive import AdaptiveBank
