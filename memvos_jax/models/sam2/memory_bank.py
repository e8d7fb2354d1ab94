"""SAM 2 per-object memory in static shapes: pinned conditioning slots + a FIFO ring of tracked frames.

Why not ``memvos_jax.memory.MemoryBank``: SAM 2 memory is per object (no key
shared by objects; each object has its own conditioning frames, and an
object's ring is not written on its own conditioning frames), it carries
object pointers beside the spatial features, and the official read is by
exact temporal offset (frames t-1..t-6 for spatial memory, t-1..t-15 for
pointers, mirrored when tracking backwards), not "the newest slots". So the
ring stores frame indices and a read gathers the slots whose frame sits at
each offset, with a validity mask; the attended token count is fixed
(conditioning slots + num_maskmem-1 frames + pointers) whatever the video length.

Stacked over objects along a leading axis K by the predictor.
"""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class ObjectMemory:
  cond_feats: jax.Array    # [Cc, h, w, Cm] bfloat16 (as the official stores maskmem_features)
  cond_ptr: jax.Array      # [Cc, C]
  cond_frame: jax.Array    # [Cc] int32
  cond_valid: jax.Array    # [Cc] bool
  cond_masks: jax.Array    # [Cc, 4h, 4w] float32: the frame's low-res logits (output as is)
  cond_score: jax.Array    # [Cc] float32
  ring_feats: jax.Array    # [R, h, w, Cm] bfloat16
  ring_ptr: jax.Array      # [R, C]
  ring_frame: jax.Array    # [R] int32, -1 = free
  ring_age: jax.Array      # [R] int32 insertion counter (FIFO eviction)
  count: jax.Array         # [] int32


def empty(cond_capacity: int, ring_size: int, hw, mem_dim: int, hidden_dim: int) -> dict:
  """Host (numpy) arrays of an empty memory, filled by the predictor then stacked."""
  h, w = hw
  bf16 = jnp.bfloat16
  return dict(
      cond_feats=np.zeros((cond_capacity, h, w, mem_dim), bf16),
      cond_ptr=np.zeros((cond_capacity, hidden_dim), np.float32),
      cond_frame=np.full((cond_capacity,), -1, np.int32),
      cond_valid=np.zeros((cond_capacity,), bool),
      cond_masks=np.zeros((cond_capacity, 4 * h, 4 * w), np.float32),
      cond_score=np.zeros((cond_capacity,), np.float32),
      ring_feats=np.zeros((ring_size, h, w, mem_dim), bf16),
      ring_ptr=np.zeros((ring_size, hidden_dim), np.float32),
      ring_frame=np.full((ring_size,), -1, np.int32),
      ring_age=np.zeros((ring_size,), np.int32),
      count=np.zeros((), np.int32))


def read(mem: ObjectMemory, frame, sign, num_frames, num_maskmem: int, max_obj_ptrs: int,
         past_cond_ptrs_only: bool = True):
  """What frame ``frame`` attends to (official ``_prepare_memory_conditioned_features``).

  sign: +1 tracking forward, -1 backward. ``past_cond_ptrs_only``: the
  pointers of conditioning frames after ``frame`` are left out (official
  ``only_obj_ptrs_in_the_past_for_eval``, inference); training (False) reads
  them all. Returns (feats [S, h, w, Cm] bf16,
  tpos_idx [S], feat_valid [S], ptrs [P, C], ptr_pos [P], ptr_valid [P],
  t_diff_max) with S = Cc + num_maskmem - 1 and P = Cc + R.
  """
  cc = mem.cond_valid.shape[0]
  offs = jnp.arange(1, num_maskmem, dtype=jnp.int32)                    # t_rel
  used = mem.ring_frame >= 0
  match = (mem.ring_frame[None] == (frame - sign * offs)[:, None]) & used[None]   # [6, R]
  found = jnp.any(match, axis=1)
  idx = jnp.argmax(match, axis=1)
  feats = jnp.concatenate([mem.cond_feats, mem.ring_feats[idx]], axis=0)
  tpos_idx = jnp.concatenate([jnp.full((cc,), num_maskmem - 1, jnp.int32), offs - 1])
  feat_valid = jnp.concatenate([mem.cond_valid, found])

  max_ptrs = jnp.minimum(num_frames, max_obj_ptrs)
  cond_dt = (frame - mem.cond_frame) * sign
  ring_dt = (frame - mem.ring_frame) * sign
  cond_ptr_ok = mem.cond_valid & (cond_dt >= 0) if past_cond_ptrs_only else mem.cond_valid
  ptr_valid = jnp.concatenate([cond_ptr_ok,
                               used & (ring_dt >= 1) & (ring_dt <= max_ptrs - 1)])
  ptrs = jnp.concatenate([mem.cond_ptr, mem.ring_ptr], axis=0)
  ptr_pos = jnp.concatenate([cond_dt, ring_dt]).astype(jnp.float32)
  t_diff_max = jnp.maximum(max_ptrs - 1, 1).astype(jnp.float32)
  return feats, tpos_idx, feat_valid, ptrs, ptr_pos, ptr_valid, t_diff_max


def cond_lookup(mem: ObjectMemory, frame):
  """(is a conditioning frame of this object, its slot)."""
  hit = mem.cond_valid & (mem.cond_frame == frame)
  return jnp.any(hit), jnp.argmax(hit)


def write(mem: ObjectMemory, feats, ptr, frame) -> ObjectMemory:
  """Store a tracked (non-conditioning) frame: a free slot, else over the oldest."""
  slot = jnp.argmin(jnp.where(mem.ring_frame < 0, -1, mem.ring_age))
  put = lambda arr, new: jax.lax.dynamic_update_index_in_dim(
      arr, jnp.asarray(new).astype(arr.dtype), slot, 0)
  return mem.replace(ring_feats=put(mem.ring_feats, feats), ring_ptr=put(mem.ring_ptr, ptr),
                     ring_frame=put(mem.ring_frame, frame), ring_age=put(mem.ring_age, mem.count),
                     count=mem.count + 1)


def write_cond(mem: ObjectMemory, feats, ptr, frame, masks, score) -> ObjectMemory:
  """Store a conditioning (prompted) frame: a free slot, else over the oldest but the first.

  With as many slots as prompted frames (the VOS protocol gives each object
  once: one slot) this is the official unbounded list; a full memory keeps
  slot 0 (the first prompt) pinned and replaces the oldest other one.
  """
  cc = mem.cond_valid.shape[0]
  free = ~mem.cond_valid
  if cc > 1:
    oldest = 1 + jnp.argmin(jnp.where(mem.cond_valid[1:], mem.cond_frame[1:], 2 ** 30))
  else:
    oldest = jnp.asarray(0)
  slot = jnp.where(jnp.any(free), jnp.argmax(free), oldest)
  put = lambda arr, new: jax.lax.dynamic_update_index_in_dim(
      arr, jnp.asarray(new).astype(arr.dtype), slot, 0)
  return mem.replace(cond_feats=put(mem.cond_feats, feats), cond_ptr=put(mem.cond_ptr, ptr),
                     cond_frame=put(mem.cond_frame, frame), cond_valid=put(mem.cond_valid, True),
                     cond_masks=put(mem.cond_masks, masks), cond_score=put(mem.cond_score, score))
