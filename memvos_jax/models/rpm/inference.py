"""RPM-Net inference: frame-to-frame label propagation through the matching module.

No memory bank: the carry is the previous frame's embedding and its mask.
For frame t the matching module (layers 106-108) compares the embeddings of
t (target) and t-1 (reference) and gives a displacement per stride-4
location; layer 109 samples the t-1 mask there. All objects travel together
as the K+1 channels (background first) of one map; the warped map is
renormalised (zero padding outside the frame loses mass; an emptied location
is background) and its argmax is the mask.

``resolution='stride4'`` is Table 1 literally: the t-1 mask is averaged down
to stride 4, warped there, and the result upsampled bilinearly. Repeating
that every frame erodes thin parts and corners (a pixel at a convex corner
gets 0.625^2 < 1/2 of its object back), so the default ``'full'`` applies
layer 109 to the full-resolution mask with the displacement field upsampled
(bilinear, times 4): a zero field copies the mask exactly.
``propagate='hard'`` feeds the next frame the one-hot of the mask (the
paper's "t-1 segmentation mask"); ``'soft'`` feeds the probabilities.

Annotations follow the shared semantics of ``core.override_objects``: the
objects a frame's annotation gives take their mask there (and remove other
objects inside it), from that frame on. Frames are padded (centred) to a
multiple of 64, the stride of the embedding's res5 stage. The scan over a
chunk is ``core.make_chunk_fn`` with this module's ``frame_step``.
"""

import dataclasses
import functools
from typing import ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from memvos_jax.inference.core import (FrameInput, ScanSettings, frame_output, override_objects,
                                       pad_amounts, padded_size, prepare_frame)
from memvos_jax.inference.dtypes import float32_only
from memvos_jax.models.rpm.deform_conv import deform_sample
from memvos_jax.nn.layers import resize_bilinear
from memvos_jax.models.rpm.modeling import EMBED_STRIDE, STRIDE, downsample

PROPAGATE = ('hard', 'soft')
RESOLUTIONS = ('full', 'stride4')


@dataclasses.dataclass(frozen=True)
class RPMSettings(ScanSettings):
  """Static settings of one compiled RPM-Net inference program."""
  capacity: int = 1          # no memory bank; accepted for the shared drivers
  stride: int = STRIDE
  propagate: str = 'hard'
  resolution: str = 'full'
  calibrate: bool = True
  bfloat16_core: ClassVar[bool] = False

  def __post_init__(self):
    super().__post_init__()
    float32_only(self, 'RPM-Net')
    if self.propagate not in PROPAGATE:
      raise ValueError(f'inference.propagate={self.propagate!r} (known: {", ".join(PROPAGATE)})')
    if self.resolution not in RESOLUTIONS:
      raise ValueError(f'inference.resolution={self.resolution!r} '
                       f'(known: {", ".join(RESOLUTIONS)})')


@flax.struct.dataclass
class RPMState:
  """The scan carry."""
  embed: jax.Array        # [h, w, E] embedding of the previous frame (h = Hp/4)
  probs: jax.Array        # [Hp, Wp, K+1] previous mask (stride4: [h, w, K+1]), bg first
  active: jax.Array       # [K] bool: objects introduced so far


def _background(h, w, k):
  return jnp.zeros((h, w, k + 1), jnp.float32).at[..., 0].set(1.0)


def init_state(model, settings: RPMSettings, num_objects: int, size) -> RPMState:
  """Empty carry for frames of size ``size`` = (H, W): all background."""
  hp, wp = padded_size(size, settings.stride)
  h, w = hp // EMBED_STRIDE, wp // EMBED_STRIDE
  full = settings.resolution == 'full'
  return RPMState(embed=jnp.zeros((h, w, model.width), jnp.float32),
                  probs=_background(*((hp, wp) if full else (h, w)), num_objects),
                  active=jnp.zeros((num_objects,), bool))


def propagate(model, params, prev_embed, embed, prev_probs, calibrate=False):
  """Warp ``prev_probs`` [h', w', C] (h' = h or 4h) from the previous frame
  onto the current one; embeddings are [h, w, E].

  ``calibrate`` subtracts the field the network predicts for the frame
  against itself (zero motion), removing its systematic part.
  Returns ([h', w', C] renormalised probabilities, [h, w, 2] offsets).
  """
  apply = functools.partial(model.apply, params)
  offsets = apply(embed[None], prev_embed[None], method='match')        # [1, h, w, 2]
  if calibrate:
    offsets = offsets - apply(embed[None], embed[None], method='match')
  scale = prev_probs.shape[0] // offsets.shape[1]
  field = offsets if scale == 1 else resize_bilinear(offsets, prev_probs.shape[:2]) * scale
  warped = deform_sample(prev_probs[None], field)[0]                     # [h', w', C]
  total = jnp.sum(warped, axis=-1, keepdims=True)
  h, w, c = warped.shape
  warped = jnp.where(total > 1e-6, warped / jnp.maximum(total, 1e-6), _background(h, w, c - 1))
  return warped, offsets[0]


def frame_step(model, params, settings: RPMSettings, state: RPMState, frame: FrameInput):
  """Segment one frame from the previous one. Pure; traced once per clip shape."""
  k = state.active.shape[0]
  h, w = frame.image.shape[:2]
  pt, pb, pl, pr = pad_amounts((h, w), settings.stride)
  image = prepare_frame(frame.image, settings.stride)                   # [Hp, Wp, 3]
  hp, wp = image.shape[:2]
  embed = model.apply(params, image[None], method='embed')[0]           # [h4, w4, E]
  warped, _ = propagate(model, params, state.embed, embed, state.probs, settings.calibrate)
  probs = jnp.moveaxis(resize_bilinear(warped, (hp, wp)), -1, 0)        # [K+1, Hp, Wp]
  # (resize_bilinear is the identity at full resolution)

  # An annotation overrides the propagation for the objects it gives.
  # (The background is zeroed there, not re-aggregated as in merge_annotation.)
  objects, region = override_objects(probs[1:], frame, (pt, pb, pl, pr))
  background = jnp.where(region, 0.0, probs[0])
  probs = jnp.concatenate([background[None], objects], axis=0)
  mask = jnp.argmax(probs, axis=0)                                       # [Hp, Wp]

  if settings.propagate == 'hard':
    carried = jax.nn.one_hot(mask, k + 1, dtype=jnp.float32)            # [Hp, Wp, K+1]
  else:
    carried = jnp.moveaxis(probs, 0, -1)
  if settings.resolution == 'stride4':
    carried = downsample(carried[None])[0]
  new_state = RPMState(embed=embed, probs=carried,
                       active=state.active | frame.given)

  return new_state, frame_output(probs, (pt, pb, pl, pr), (h, w), settings)
