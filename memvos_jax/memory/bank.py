"""Fixed-capacity memory bank: a ring of frame slots with validity masks.

Shapes never change, so a whole video runs under one ``jax.lax.scan``. Each
slot holds one memory frame: its key (shared by all objects, or one per object
for networks whose memory key sees the mask, e.g. STM), a value per object,
which objects the value is valid for (objects that appear later have no value
in earlier slots), the frame it came from, whether it is pinned
(annotated/prompted frames are never evicted) and a usage counter.

Eviction is FIFO: a write goes to a free slot if there is one, else over the
oldest unpinned slot (the oldest slot of all if every slot is pinned).
"""

import flax.struct
import jax
import jax.numpy as jnp


MIN_BUCKET = 8


def bucket_capacity(frames: int) -> int:
  """The capacity an automatic (whole-clip) memory gets for ``frames`` writes: the next
  power of two (at least ``MIN_BUCKET``), so that clips of one frame size but different
  lengths share one compiled program. Slots past the writes stay free (masked out of every
  read), so the masks do not change; a read costs at most twice the exact size."""
  n = max(int(frames), MIN_BUCKET)
  return 1 << (n - 1).bit_length()


@flax.struct.dataclass
class MemoryBank:
  keys: jax.Array       # [C, N, Ck]   N = h*w positions per frame
                        # (or [K, C, N, Ck]: per-object keys, ``per_object_keys``)
  values: jax.Array     # [K, C, N, Cv] (object-major: a read reshapes, never copies)
  valid: jax.Array      # [C, K] bool: slot holds a value for object k
  frame: jax.Array      # [C] int32: frame index written into the slot (-1 free)
  pinned: jax.Array     # [C] bool
  usage: jax.Array      # [C] float32: accumulated read weight (for LFU policies)

  @property
  def capacity(self) -> int:
    return self.frame.shape[0]

  @property
  def per_object_keys(self) -> bool:
    return self.keys.ndim == 4

  @property
  def slot_used(self) -> jax.Array:  # [C] bool
    return jnp.any(self.valid, axis=1)


def init(capacity: int, num_objects: int, num_positions: int, key_dim: int,
         value_dim: int, dtype=jnp.float32, per_object_keys: bool = False) -> MemoryBank:
  """An empty bank (``per_object_keys``: keys [K, C, N, Ck] instead of [C, N, Ck])."""
  c, k, n = capacity, num_objects, num_positions
  key_shape = (k, c, n, key_dim) if per_object_keys else (c, n, key_dim)
  return MemoryBank(
      keys=jnp.zeros(key_shape, dtype),
      values=jnp.zeros((k, c, n, value_dim), dtype),
      valid=jnp.zeros((c, k), bool),
      frame=jnp.full((c,), -1, jnp.int32),
      pinned=jnp.zeros((c,), bool),
      usage=jnp.zeros((c,), jnp.float32))


def select_slot(bank: MemoryBank) -> jax.Array:
  """FIFO slot choice: first free slot, else the oldest unpinned, else the oldest."""
  used = bank.slot_used
  big = jnp.iinfo(jnp.int32).max
  age_key = jnp.where(bank.pinned, big // 2 + bank.frame, bank.frame)
  oldest = jnp.argmin(age_key)
  return jnp.where(jnp.all(used), oldest, jnp.argmin(used)).astype(jnp.int32)


def write(bank: MemoryBank, key: jax.Array, values: jax.Array,
          obj_valid: jax.Array, frame: jax.Array, pin: jax.Array | bool = False,
          enable: jax.Array | bool = True, select=None) -> MemoryBank:
  """Write one frame into the bank (pure; a no-op where ``enable`` is False).

  Args:
    key: [N, Ck] ([K, N, Ck] for a per-object-key bank); values: [K, N, Cv];
    obj_valid: [K] bool (objects that have a value in this frame); frame: int
    frame index; pin: keep forever; select: ``(bank, frame) -> slot`` eviction
    policy (default FIFO ``select_slot``; LFU: ``memory.adaptive.lfu_slot``).
  """
  def do_write(b):
    slot = select_slot(b) if select is None else select(b, frame)
    put = lambda arr, new, axis=0: jax.lax.dynamic_update_index_in_dim(
        arr, jnp.asarray(new).astype(arr.dtype), slot, axis)
    return b.replace(
        keys=put(b.keys, key, b.keys.ndim - 3),
        values=put(b.values, values, 1),
        valid=put(b.valid, obj_valid),
        frame=put(b.frame, frame),
        pinned=put(b.pinned, pin),
        usage=put(b.usage, 0.0))

  enable = jnp.asarray(enable) & jnp.any(obj_valid)
  return jax.lax.cond(enable, do_write, lambda b: b, bank)
