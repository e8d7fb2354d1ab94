"""SAM 2.1's per-frame core for the clip scan (the official semi-supervised VOS protocol).

The step follows the official semi-supervised VOS evaluation
(``tools/vos_inference.py``; with objects first annotated on later frames,
its ``--track_object_appearing_later_in_video`` mode): each object is given
as a mask prompt (``add_new_mask``) on the first frame that annotates it and
is tracked forward from there, independently of the other objects (SAM 2
memories are per object); before that frame it has no output (logits
-1024). Per frame, the objects' logits are resized to the video size and
combined as ``vos_inference`` writes DAVIS-style PNGs (``non_overlap_masks``):
each pixel goes to the object with the highest logit if that logit is > 0.

Frames arrive at video size and are resized to ``image_size`` inside the
step exactly as PIL does (``models/sam2/pil_resize.py``). The memory is
static: per object ``capacity`` conditioning slots (the prompted frames) and
a ring of 15 tracked frames read at exact temporal offsets.
``Sam2Settings`` (the official predictor options) also configure
``predictor.Sam2Predictor``, the promptable API over the same tracking.
"""

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

import memvos_jax.models.sam2.memory_bank as mb
import memvos_jax.models.sam2.tracking as tracking
from memvos_jax.inference.core import FrameOutput, ScanSettings
from memvos_jax.models.sam2.modeling import NO_OBJ_SCORE
from memvos_jax.models.sam2.pil_resize import resize_bicubic
from memvos_jax.nn.layers import resize_bilinear

@dataclasses.dataclass(frozen=True)
class Sam2Settings:
  """Static predictor options (official names; ``num_maskmem`` is the network's)."""
  max_obj_ptrs_in_encoder: int = 16
  multimask_output_in_sam: bool = True
  multimask_min_pt_num: int = 0
  multimask_max_pt_num: int = 1
  multimask_output_for_tracking: bool = True
  binarize_mask_from_pts_for_mem_enc: bool = True
  add_all_frames_to_correct_as_cond: bool = True
  chunk: int = 4              # frames per compiled scan call


def ring_size(model, settings) -> int:
  """Tracked frames kept per object: the spatial (num_maskmem - 1) and pointer reach."""
  return max(model.num_maskmem - 1, settings.max_obj_ptrs_in_encoder - 1)



UNKNOWN_LENGTH = 2 ** 30   # a stream: pointer distances normalised as for long videos


@dataclasses.dataclass(frozen=True)
class Sam2StepSettings(ScanSettings, Sam2Settings):
  """Static settings of one compiled clip program: the predictor's options plus the
  shared scan fields (``ScanSettings``; ``stride`` is unused, frames are resized to
  ``model.image_size``)."""
  capacity: int = 1              # conditioning slots per object
  chunk: int = 4                 # frames per compiled scan call
  # dtype 'bfloat16': the official predictor under torch.autocast (the weights cast by
  # ``common.autocast_variables``; the step itself follows the weights' dtype).


@flax.struct.dataclass
class Sam2ClipState:
  """The scan carry: every object's memory (stacked [K, ...]) and which objects started."""
  mems: mb.ObjectMemory
  active: jax.Array       # [K] bool


def init_state(model, settings, num_objects, size):
  del size  # frames are resized to model.image_size
  hw = (model.image_size // 16,) * 2
  one = mb.empty(settings.capacity, ring_size(model, settings), hw, model.mem_dim,
                 model.hidden_dim)
  mems = mb.ObjectMemory(**{k: jnp.asarray(np.broadcast_to(v, (num_objects,) + v.shape))
                            for k, v in one.items()})
  return Sam2ClipState(mems=mems, active=jnp.zeros((num_objects,), bool))


def frame_step(model, params, settings: Sam2StepSettings, state: Sam2ClipState, frame):
  """Segment one frame for all objects and update their memories. Pure; traced once per clip."""
  k = state.active.shape[0]
  h, w = frame.image.shape[:2]
  num_frames = getattr(frame, 'num_frames', None)
  num_frames = jnp.asarray(UNKNOWN_LENGTH if num_frames is None else num_frames, jnp.int32)
  active = state.active | frame.given
  # 0: not started (no output), 1: tracked, 2: given on this frame (mask prompt).
  mode = jnp.where(frame.given, 2, jnp.where(state.active, 1, 0))
  image = resize_bicubic(frame.image, (model.image_size,) * 2)
  feats = jax.lax.cond(jnp.any(active), lambda: tracking.encode(model, params, image),
                       lambda: tracking.no_features(model, params, image))
  s4 = 4 * feats['vision'].shape[0]

  def per_object(args):
    mem, slot, m = args

    def idle(mem):
      return mem, jnp.full((s4, s4), NO_OBJ_SCORE, jnp.float32)

    def track(mem):
      out, _, mem = tracking.track(model, params, settings, feats, mem, frame.index, 1,
                                   num_frames)
      return mem, out['low_res']

    def prompt(mem):
      mask = tracking.resize_mask(frame.annotation == slot + 1, model.image_size)
      out, maskmem = tracking.mask_prompt(model, params, settings, feats, mask)
      mem = mb.write_cond(mem, maskmem, out['obj_ptr'], frame.index, out['low_res'],
                          out['score'])
      return mem, out['low_res']

    return jax.lax.switch(m, [idle, track, prompt], mem)

  mems, low = jax.lax.map(per_object, (state.mems, jnp.arange(k), mode))   # low [K, 4h, 4w]
  out_hw = tuple(settings.out_size or (h, w))
  logits = jnp.moveaxis(resize_bilinear(jnp.moveaxis(low, 0, -1), out_hw), -1, 0)  # [K, H, W]
  best = jnp.argmax(logits, axis=0)
  top = jnp.max(logits, axis=0)
  mask = jnp.where(top > 0, best + 1, 0).astype(jnp.uint8)
  probs = None
  if settings.return_probs:   # official _apply_non_overlapping_constraints, then sigmoid
    keep = best[None] == jnp.arange(k)[:, None, None]
    fg = jax.nn.sigmoid(jnp.where(keep, logits, jnp.minimum(logits, -10.0)))
    probs = jnp.concatenate([1.0 - jnp.max(fg, axis=0, keepdims=True), fg])   # [K+1, H, W]
  return Sam2ClipState(mems=mems, active=active), FrameOutput(mask=mask, probs=probs)


def memory_frames(num_frames, annotated, options):
  del num_frames, annotated, options
  return 1   # each object is given once (on its first annotated frame): one conditioning slot
