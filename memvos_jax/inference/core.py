"""The shared inference core: frame types, the chunked scan and the pieces every model repeats.

A model's per-frame core (``memvos_jax/models/<name>/inference.py``) is a pure
``step(model, params, settings, state, frame) -> (state, FrameOutput)``;
``make_chunk_fn`` scans it over a chunk of frames.
This module also owns what the cores share: the centred padding, frame
normalisation, positions per frame, the annotation override, the output
tail (crop, resize, argmax) and the settings fields every program has.
"""

import dataclasses
import functools
from typing import Any, Callable, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.inference import dtypes
from memvos_jax.nn.aggregate import aggregate
from memvos_jax.nn.layers import resize_bilinear

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclasses.dataclass(frozen=True)
class ScanSettings:
  """Static fields every compiled inference program has (each model adds its own)."""
  capacity: int = 20             # memory slots (frames) of the static bank
  chunk: int = 8                 # frames per compiled scan call
  return_probs: bool = False
  stride: int = 16               # frames are padded (centred) to a multiple of this
  # (H, W) to restore outputs to when frames were processed at another size:
  # probabilities are resized bilinearly (torch align_corners=False), then argmax.
  out_size: tuple[int, int] | None = None
  # Compute dtype of the network (``dtypes``): 'float32', 'bfloat16' (convolutions and
  # matmuls; memory stored in it; affinities, softmax / top-k, aggregation and the
  # returned probabilities stay float32) or 'auto', resolved here to one of the two.
  dtype: str = 'float32'
  # False for models without a bfloat16 core: 'auto' is float32 for them.
  bfloat16_core: ClassVar[bool] = True

  def __post_init__(self):
    object.__setattr__(self, 'dtype', dtypes.resolve(self.dtype, self.bfloat16_core))


@flax.struct.dataclass
class FrameInput:
  """One frame of a chunk (the scan's xs); leading axis T inside a chunk."""
  image: jax.Array        # [H, W, 3] uint8 RGB
  annotation: jax.Array   # [H, W] uint8 object-slot map (0 = bg; slot i = object i-1)
  given: jax.Array        # [K] bool: objects whose mask this frame's annotation gives
  index: jax.Array        # [] int32 frame index in the video
  is_last: jax.Array      # [] bool: last frame of the video (never memorised)
  valid: jax.Array        # [] bool: False for padding frames of the last chunk
  num_frames: jax.Array | None = None  # [] int32 frames in the video (None: unknown, a stream)
  # [K+1, H, W] float32 probabilities (bg first) to memorise instead of the
  # prediction: teacher forcing, for parity tests (STM core); None: off.
  teacher: jax.Array | None = None


@flax.struct.dataclass
class FrameOutput:
  mask: jax.Array         # [H, W] uint8: 0 = bg, i = object slot i-1
  probs: jax.Array | None  # [K+1, H, W] float32 (bg first) if return_probs


def pad_amounts(size, d=16):
  """Official ``pad_divide_by``: (top, bottom, left, right) centred zero padding."""
  h, w = size
  dh, dw = (-h) % d, (-w) % d
  return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def padded_size(size, stride=16) -> tuple[int, int]:
  """(Hp, Wp): ``size`` = (H, W) padded to a multiple of ``stride``."""
  t, b, l, r = pad_amounts(size, stride)
  return size[0] + t + b, size[1] + l + r


def positions(size, stride=16) -> int:
  """Memory positions per frame: h*w at ``stride`` of the padded frame."""
  hp, wp = padded_size(size, stride)
  return (hp // stride) * (wp // stride)


def normalize(images, dtype=jnp.float32):
  """uint8 [..., 3] -> ImageNet-normalised ``dtype`` (computed in float32)."""
  x = images.astype(jnp.float32) / 255.0
  return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)


def prepare_frame(image, stride=16, dtype=jnp.float32, pad_first=False):
  """[H, W, 3] uint8 -> [Hp, Wp, 3] ``dtype``: normalised (in float32) and padded (centred).

  ``pad_first=False`` (official STCN, RPM): normalise, then pad with zeros.
  ``pad_first=True`` (official STM, AFB-URR encoders): pad the [0, 1] frame with
  zeros (black), then normalise, so the border is -mean/std.
  """
  t, b, l, r = pad_amounts(image.shape[:2], stride)
  pad = ((t, b), (l, r), (0, 0))
  if pad_first:
    x = jnp.pad(image.astype(jnp.float32) / 255.0, pad)
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(dtype)
  return jnp.pad(normalize(image, dtype), pad)


def override_objects(objects, frame: FrameInput, pad):
  """Given objects take their annotated mask; the others are zeroed inside it.

  objects [K, Hp, Wp], pad = (top, bottom, left, right) ->
  (objects [K, Hp, Wp], region [Hp, Wp] bool: pixels some given object covers).
  """
  k = objects.shape[0]
  pt, pb, pl, pr = pad
  gt_ids = jnp.pad(frame.annotation.astype(jnp.int32), ((pt, pb), (pl, pr)))
  gt = (gt_ids[None] == jnp.arange(1, k + 1)[:, None, None]).astype(objects.dtype)
  gt = gt * frame.given[:, None, None]                                 # [K, Hp, Wp]
  region = jnp.sum(gt, axis=0) > 0.5
  merged = jnp.where(region[None], 0.0, objects)
  return jnp.where(frame.given[:, None, None], gt, merged), region


def merge_annotation(probs, frame: FrameInput, active, pad):
  """``override_objects``, then the official re-aggregation of the background.

  probs [K+1, Hp, Wp] (bg first) -> (probs [K+1, Hp, Wp] re-aggregated where
  the frame has an annotation, active [K] with the given objects added,
  has_annotation []).
  """
  has_ann = jnp.any(frame.given)
  merged, _ = override_objects(probs[1:], frame, pad)
  active = active | frame.given
  return jnp.where(has_ann, aggregate(merged, active), probs), active, has_ann


def frame_output(probs, pad, size, settings: ScanSettings) -> FrameOutput:
  """The output tail: probs [C, Hp, Wp] (bg first) -> FrameOutput at ``size`` or ``out_size``.

  Crops the padding, resizes to ``settings.out_size`` (bilinear) when set and
  different, then argmax; probabilities are returned as float32 if asked.
  """
  h, w = size
  pt, _, pl, _ = pad
  probs = probs[:, pt:pt + h, pl:pl + w]                               # [C, H, W]
  if settings.out_size is not None and tuple(settings.out_size) != (h, w):
    probs = jnp.moveaxis(resize_bilinear(jnp.moveaxis(probs, 0, -1), settings.out_size), -1, 0)
  return FrameOutput(mask=jnp.argmax(probs, axis=0).astype(jnp.uint8),
                     probs=probs.astype(jnp.float32) if settings.return_probs else None)


def make_chunk_fn(model, settings, step: Callable[..., Any],
                  on_trace: Callable[[], Any] | None = None, batch: bool = False):
  """A jitted ``(params, state, frames[T]) -> (state, outputs[T])`` over one chunk.

  ``batch``: ``(params, state[B], frames[B, T]) -> (state[B], outputs[B, T])``,
  the scan vmapped over B clips (the weights shared).

  ``step(model, params, settings, state, frame) -> (state, FrameOutput)`` is
  the model's per-frame core (``Family.step``); the settings need
  ``out_size`` and ``return_probs``. Padding frames (``valid`` False) leave
  the state untouched. ``on_trace`` is called each time the scan body is
  traced (tests use it to count retraces).
  """

  def body(params, state, frame):
    if on_trace is not None:
      on_trace()
    def run(s):
      return step(model, params, settings, s, frame)
    def skip(s):
      k = frame.given.shape[0]
      h, w = settings.out_size or frame.image.shape[:2]
      probs = jnp.zeros((k + 1, h, w), jnp.float32) if settings.return_probs else None
      return s, FrameOutput(mask=jnp.zeros((h, w), jnp.uint8), probs=probs)
    return jax.lax.cond(frame.valid, run, skip, state)

  def run_chunk(params, state, frames):
    return jax.lax.scan(functools.partial(body, params), state, frames)

  if batch:
    run_chunk = jax.vmap(run_chunk, in_axes=(None, 0, 0))
  return jax.jit(run_chunk, donate_argnums=(1,))
