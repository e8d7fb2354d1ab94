"""Python API: load a model, segment a whole clip, or stream frames one by one.

    import memvos_jax
    seg = memvos_jax.load()                                # the shipped default model
    seg = memvos_jax.load('stcn', 'stcn.pth')             # or an orbax folder
    ids = seg.segment(frames, {0: first_mask})             # [T, H, W] object ids
    session = seg.session(size=(480, 854))
    for frame in stream:
      ids = session.step(frame, mask=None)                 # a mask adds/corrects objects

Both paths run the same compiled per-frame scan body, so a stream gives the
masks a whole-clip call gives (``chunk=1`` for both by default).
"""

import dataclasses
import sys

import numpy as np

from memvos_jax import registry
from memvos_jax.data import array_inputs
from memvos_jax.errors import InputError
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.inference.core import FrameInput
from memvos_jax.inference.objects import ObjectSlots


class Segmenter:
  """A model with its weights and inference settings."""

  def __init__(self, model, variables, memory_capacity=0, chunk=1, family=None, **options):
    """``options``: the model's inference settings (STCN: mem_every, top_k); ``family``:
    the model's ``Family`` (default: the registry's for the network's class)."""
    self.model, self.variables = model, variables
    self.memory_capacity = memory_capacity
    self.clip = ClipSegmenter(family or registry.of(model), model, variables,
                              memory_capacity=memory_capacity, chunk=chunk, **options)

  def segment(self, frames, masks: dict[int, np.ndarray]) -> np.ndarray:
    """frames [T, H, W, 3] uint8 RGB (or floats in [0, 1]); masks {frame index: [H, W]
    ids} -> [T, H, W] uint8 ids. Bad arrays raise InputError naming them."""
    return self.clip.segment_arrays(*_checked_clip(frames, masks))

  def segment_batch(self, clips) -> list[np.ndarray]:
    """[(frames [T, H, W, 3], masks {frame: [H, W] ids}), ...] -> [T, H, W] uint8 ids each.

    Clips of the same frame size run together through one vmapped scan (their
    lengths and object counts may differ); the result equals ``segment`` on
    each clip up to float rounding (XLA may pick other kernels for a batch).
    """
    return self.clip.segment_arrays_batch([_checked_clip(frames, masks, f'clip {c} frames')
                                           for c, (frames, masks) in enumerate(clips)])

  def session(self, size, max_objects: int = 4, memory_capacity: int | None = None):
    """A streaming session for frames of ``size`` = (H, W)."""
    return StreamingSession(self, size, max_objects,
                            memory_capacity or self.memory_capacity or 20)


def _checked_clip(frames, masks, what: str = 'frames'):
  """(frames [T, H, W, 3] uint8, masks {frame: [H, W] uint8 ids}) or an InputError naming them."""
  frames = array_inputs.to_uint8_rgb(frames, what)
  return frames, array_inputs.to_masks(masks, len(frames), frames.shape[1:3])


class StreamingSession:
  """Frame-by-frame segmentation with a bounded memory.

  ``step(frame, mask)``: a mask (ids, 0 = background) on any frame adds the
  objects it contains, or replaces the prediction of known ones, from that
  frame on; the frame is memorised and pinned.
  """

  def __init__(self, segmenter: Segmenter, size, max_objects: int, capacity: int):
    clip = segmenter.clip
    self._settings = dataclasses.replace(clip.settings(capacity), chunk=1)
    self._fn = clip.chunk_fn(self._settings)
    self._variables = clip.variables_for(self._settings.dtype)
    self._state = clip.family.init_state(segmenter.model, self._settings, max_objects, size)
    self.size = tuple(size)
    self._slots = ObjectSlots(max_objects)
    self.index = 0

  @property
  def objects(self) -> list[int]:
    return self._slots.objects

  def program(self):
    """(settings, variables, initial state, chunk fn): what ``step`` runs, one frame per
    call (``memvos_jax.export`` serializes exactly this)."""
    return self._settings, self._variables, self._state, self._fn

  def step(self, frame, mask=None) -> np.ndarray:
    """frame [H, W, 3] uint8 (or floats in [0, 1]); optional mask [H, W] ids -> [H, W] uint8 ids."""
    frame = array_inputs.to_uint8_rgb(frame, f'frame {self.index}', ndim=3)
    if frame.shape != self.size + (3,):
      raise InputError(f'frame {self.index}', f'shape {frame.shape} but the session '
                       f'is {self.size[0]}x{self.size[1]}x3')
    k = self._slots.max_objects
    annotation = np.zeros((1,) + self.size, np.uint8)
    given = np.zeros((1, k), bool)
    if mask is not None:
      mask = array_inputs.to_ids(mask, self.size, f'mask of frame {self.index}')
      labels = [int(l) for l in np.unique(mask) if l]
      for label in labels:
        if label not in self._slots:
          if len(self._slots) == k:
            raise InputError(f'mask of frame {self.index}',
                             f'object {label} exceeds max_objects={k}')
          self._slots.add(label, self.index)
      given[0] = self._slots.given(labels)
      annotation[0] = self._slots.to_slots(mask)
    xs = FrameInput(
        image=frame[None], annotation=annotation, given=given,
        index=np.array([self.index], np.int32), is_last=np.zeros(1, bool),
        valid=np.ones(1, bool))
    self._state, out = self._fn(self._variables, self._state, xs)
    self.index += 1
    return self._slots.to_ids(np.asarray(out.mask[0]))


def load(model: str = 'default', checkpoint: str = '', variant: str | None = None,
         quiet: bool = False, **settings) -> Segmenter:
  """A Segmenter from a model name and an official .pth/.npz or orbax checkpoint.

  ``load()`` is the default model (``memvos_jax/configs/default.py``: a small
  STCN trained on real DAVIS video, weights shipped in ``memvos_jax/weights``).
  Other names (``stcn``, ``stm``, ``afb_urr``, ``sam2``, ``rpm``) take their
  config ``memvos_jax.registry.config(model)``; ``variant`` picks
  ``configs/<model>.py:<variant>`` (e.g. a ``tiny`` training checkpoint).
  ``settings`` override the config's ``inference`` entries (e.g. ``mem_every``,
  ``top_k``, ``memory_capacity``, ``size``) and ``chunk`` (default 1). Which
  weights are used is printed to stderr (``quiet=True``: not printed;
  ``Segmenter.weights`` says it too).
  """
  if model not in registry.names():
    raise InputError(f'model {model!r}', f'unknown model (known: {", ".join(registry.names())})')
  module = registry.config_module(model)
  config = module.get_config(variant) if variant else module.get_config()
  if checkpoint or model != 'default':
    config.checkpoint = checkpoint
  elif not config.checkpoint:
    raise InputError(getattr(module, 'WEIGHTS', module.__file__), 'the default model\'s '
                     'weights are missing from this installation')
  net = registry.build_model(config)
  options = config.inference.to_dict()
  options.pop('max_objects', None)
  options['chunk'] = 1
  unknown = set(settings) - set(options)
  if unknown:
    raise TypeError(f'unknown {model} settings {sorted(unknown)} (known: {sorted(options)})')
  options.update(settings)
  if 'dtype' in settings:     # load_variables sets up bf16 kernels before JAX starts
    config.inference.dtype = settings['dtype']
  seg = Segmenter(net, registry.load_variables(config, net), family=registry.get(model),
                  **options)
  seg.weights = config.checkpoint or 'random initialisation (no checkpoint given)'
  if not quiet:
    name = 'default model (STCN, small, trained on DAVIS-2016)' if model == 'default' else model
    print(f'memvos_jax: {name}, weights: {seg.weights}, {seg.clip.dtype_label()}',
          file=sys.stderr)
  return seg
