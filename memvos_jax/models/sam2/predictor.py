"""SAM 2 video predictor: the official ``SAM2VideoPredictor`` workflow on compiled JAX steps.

    from memvos_jax.sam2 import build_sam2_video_predictor     # or Sam2Predictor.from_checkpoint
    predictor = build_sam2_video_predictor('configs/sam2.1/sam2.1_hiera_t.yaml',
                                           'sam2.1_hiera_tiny.pt')
    inference_state = predictor.init_state(video_path='frames/')   # JPEG folder, .mp4 or array
    _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
        inference_state=inference_state, frame_idx=0, obj_id=1, points=[[x, y]], labels=[1])
    for out_frame_idx, out_obj_ids, out_mask_logits in predictor.propagate_in_video(
        inference_state):
      masks = out_mask_logits > 0.0                # [num_objs, 1, H, W] at the video's size

The public methods carry the official names, keywords, defaults and return
values; where the official returns torch tensors these are numpy arrays of the
same shapes (``MaskLogits``, which also answer ``.cpu()`` / ``.numpy()``).

Semantics follow the official predictor (sam2 @ 2b90b9f5, with the
post-processing defaults of ``build_sam2_video_predictor`` except
``fill_hole_area`` 0; ``Sam2Settings`` turns ``add_all_frames_to_correct_as_cond``
on, ``memvos_jax.sam2`` keeps the official off): prompts on any frame and for objects added at any
time, corrections on tracked frames (memory-conditioned, previous logits as
mask prompt, the frame becomes a conditioning frame when
``add_all_frames_to_correct_as_cond``), forward and backward propagation
that reuses memories from earlier passes, conditioning frames output as
prompted. Host-side dictionaries keep every frame's output like the official
state; the compiled steps see fixed-shape per-object memories
(``models/sam2/memory_bank.py``). Propagation runs a ``jax.lax.scan`` over
chunks of frames, compiled once per (video size, object count, conditioning
slot bucket); the prompt steps compile once per point-count bucket.
"""

import dataclasses
import os
from collections import OrderedDict
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.convert.checkpoint import restore_variables
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import InputError
from memvos_jax.inference import dtypes
from memvos_jax.models.sam2 import FAMILY
from memvos_jax.models.sam2 import memory_bank as mb
from memvos_jax.models.sam2 import tracking
from memvos_jax.models.sam2.common import autocast_variables
from memvos_jax.models.sam2.convert import convert, target_shapes
from memvos_jax.models.sam2.inference import Sam2Settings, ring_size
from memvos_jax.models.sam2.modeling import NO_OBJ_SCORE, SAM2, trunk_items
from memvos_jax.models.sam2.video import load_video
from memvos_jax.nn.layers import resize_bilinear


@dataclasses.dataclass
class FrameOut:
  """One object's output on one frame (the official compact ``current_out``)."""
  pred_masks: np.ndarray           # [4h, 4w] float32 low-res logits
  obj_ptr: np.ndarray              # [C]
  score: float                     # object score logit
  maskmem: np.ndarray | None       # [h, w, Cm] bfloat16, None until encoded
  iou: np.ndarray | None = None    # [4] decoder IoU predictions
  choice: int = -1                 # mask token chosen (0 single, 1..3 multimask; -1 no decoder)


@dataclasses.dataclass
class ObjectState:
  points: dict = dataclasses.field(default_factory=dict)     # frame -> (coords [n,2], labels [n])
  masks: dict = dataclasses.field(default_factory=dict)      # frame -> [S, S] float mask
  cond: dict = dataclasses.field(default_factory=dict)       # frame -> FrameOut
  non_cond: dict = dataclasses.field(default_factory=dict)
  temp_cond: dict = dataclasses.field(default_factory=dict)
  temp_non_cond: dict = dataclasses.field(default_factory=dict)
  tracked: dict = dataclasses.field(default_factory=dict)    # frame -> reverse (bool)


@dataclasses.dataclass
class VideoState:
  """Inference state of one video (the official ``inference_state``)."""
  load_frame: Callable[[int], np.ndarray]   # i -> [S, S, 3] uint8 resized frame
  num_frames: int
  video_hw: tuple[int, int]
  objects: 'OrderedDict[Any, ObjectState]' = dataclasses.field(default_factory=OrderedDict)
  cached: tuple | None = None               # (frame index, features)

  @property
  def obj_ids(self):
    return list(self.objects)

  def __getitem__(self, key):
    """The official ``inference_state[key]`` entries that have a meaning here."""
    values = dict(num_frames=self.num_frames, video_height=self.video_hw[0],
                  video_width=self.video_hw[1], obj_ids=self.obj_ids)
    if key not in values:
      raise KeyError(f'{key!r}: the state answers {", ".join(values)}; the rest lives in its '
                     'fields (objects, cached)')
    return values[key]


class MaskLogits(np.ndarray):
  """Video-resolution mask logits [num_objs, 1, H, W] float32 (official ``video_res_masks``).

  A numpy array that also answers the torch calls made on the official
  outputs, so ``(out_mask_logits[i] > 0.0).cpu().numpy()`` works unchanged.
  """

  def cpu(self):
    return self

  def detach(self):
    return self

  def numpy(self) -> np.ndarray:
    return self.view(np.ndarray)


def _mask_logits(video: np.ndarray) -> MaskLogits:
  """[K, H, W] -> [K, 1, H, W] MaskLogits (a writable copy, as the official tensors are)."""
  return np.array(video, np.float32)[:, None].view(MaskLogits)


def _bucket(n: int, minimum: int = 1) -> int:
  b = minimum
  while b < n:
    b *= 2
  return b


class Sam2Predictor:
  """Official-semantics SAM 2 video predictor (see the module docstring)."""

  def __init__(self, params, model: SAM2 | None = None, settings: Sam2Settings | None = None,
               on_trace: Callable[[str], Any] | None = None, dtype: str = 'float32'):
    """``dtype``: 'float32', 'bfloat16' (the official predictor under ``torch.autocast``:
    ``common.autocast_variables``) or 'auto' (``inference.dtypes.auto_dtype``)."""
    self.model = model or SAM2()
    self.dtype = dtypes.resolve(dtype)
    if self.dtype == 'bfloat16':
      dtypes.bf16_kernels()
    self.params = autocast_variables(params, self.dtype)
    self.settings = settings or Sam2Settings()
    self.on_trace = on_trace or (lambda name: None)
    s = self.model.image_size
    self.feat_hw = (s // 16, s // 16)
    self.ring_size = ring_size(self.model, self.settings)
    self._encode = jax.jit(self._encode_impl)
    self._points = jax.jit(self._points_impl)
    self._mask = jax.jit(self._mask_impl)
    self._memory = jax.jit(self._memory_impl)
    self._to_video = jax.jit(self._to_video_impl, static_argnums=1)
    self._chunk = jax.jit(self._chunk_impl, donate_argnums=(1,))

  @classmethod
  def from_config(cls, config, params=None, **kwargs) -> 'Sam2Predictor':
    """A predictor from ``configs/sam2.py``: ``config.checkpoint`` (official .pt/.npz or an
    orbax folder) is loaded unless params are given."""
    model = FAMILY.build(**config.network.to_dict())
    fields = {f.name for f in dataclasses.fields(Sam2Settings)}
    settings = Sam2Settings(**{k: v for k, v in config.inference.to_dict().items() if k in fields})
    kwargs.setdefault('dtype', config.inference.get('dtype', 'float32'))
    if params is None:
      if not config.checkpoint:
        raise InputError('<config>', 'config.checkpoint is empty')
      params = FAMILY.load_variables(config, model)
    return cls(params, model, settings, **kwargs)

  @classmethod
  def from_checkpoint(cls, path: str, size: str = 'tiny', network: dict | None = None,
                      **kwargs) -> 'Sam2Predictor':
    """An official ``sam2.1_hiera_<size>.pt`` (or .npz), or an orbax folder written by
    ``python -m memvos_jax.convert --model sam2`` / ``checkpoint.save_variables``;
    size tiny/small/base_plus/large; ``network``: other ``SAM2`` fields (image_size, ...)."""
    model = SAM2(trunk=trunk_items(size), **(network or {}))
    if dtypes.resolve(kwargs.get('dtype', 'float32')) == 'bfloat16':
      dtypes.bf16_kernels()     # before the checkpoint load starts JAX's backend
    if os.path.isdir(path):
      target = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), target_shapes(model))
      return cls(restore_variables(path, target), model, **kwargs)
    return cls(convert(load_state_dict(path), model, source=path), model, **kwargs)

  # --- compiled pieces ---------------------------------------------------------
  def _apply(self, params, *args, method):
    return self.model.apply(params, *args, method=method)

  def _encode_impl(self, params, image):
    self.on_trace('encode')
    return self._apply(params, image, method='encode_image')

  def _condition(self, params, feats, mem, frame, sign, num_frames, is_init):
    def with_memory(_):
      return tracking.condition(self.model, params, self.settings, feats, mem, frame, sign,
                                num_frames)

    def without(_):
      return self._apply(params, feats['vision'], method='no_memory')

    return jax.lax.cond(is_init, without, with_memory, None)

  def _points_impl(self, params, feats, mem, frame, sign, num_frames, coords, labels, pmask,
                   mask_in, use_mask_in, is_init, multimask):
    self.on_trace('points')
    pix = self._condition(params, feats, mem, frame, sign, num_frames, is_init)
    return self._apply(params, pix, feats['s0'], feats['s1'], coords, labels, pmask, mask_in,
                       use_mask_in, multimask, method='sam_heads')

  def _mask_impl(self, params, feats, mask):
    self.on_trace('mask')
    return self._apply(params, feats['vision'], feats['s0'], feats['s1'], mask,
                       method='mask_as_output')

  def _memory_impl(self, params, feats, low_res, score, from_points):
    self.on_trace('memory')
    return tracking.encode_memory(self.model, params, feats, low_res, score,
                                  from_points & self.settings.binarize_mask_from_pts_for_mem_enc)

  def _to_video_impl(self, low_res, hw):  # [K, 4h, 4w] -> [K, H, W]
    return jnp.moveaxis(resize_bilinear(jnp.moveaxis(low_res, 0, -1), hw), -1, 0)

  def _chunk_impl(self, params, mems, images, frames, valid, sign, num_frames, video_hw):
    """Scan over a chunk of frames for all K objects. mems: ObjectMemory stacked [K, ...]."""
    self.on_trace('propagate')
    hh, ww = video_hw.shape
    m = self.model.mem_dim
    h, w = self.feat_hw

    def body(mems, x):
      image, frame, ok = x
      is_cond, slot = jax.vmap(mb.cond_lookup, in_axes=(0, None))(mems, frame)
      need = ok & ~jnp.all(is_cond)
      feats = jax.lax.cond(need, lambda: tracking.encode(self.model, params, image),
                           lambda: tracking.no_features(self.model, params, image))

      def per_object(args):
        mem, cond_k, slot_k = args

        def from_cond(mem):
          out = dict(low_res=mem.cond_masks[slot_k], score=mem.cond_score[slot_k],
                     obj_ptr=mem.cond_ptr[slot_k], iou=jnp.zeros((4,), jnp.float32),
                     choice=jnp.asarray(-1, jnp.int32))
          return mem, out, jnp.zeros((h, w, m), jnp.bfloat16), jnp.asarray(False)

        def track(mem):
          out, maskmem, mem = tracking.track(self.model, params, self.settings, feats, mem, frame,
                                             sign, num_frames)
          return mem, out, maskmem, jnp.asarray(True)

        return jax.lax.cond(cond_k | ~ok, from_cond, track, mem)

      mems, out, maskmem, ran = jax.lax.map(per_object, (mems, is_cond, slot))
      video = self._to_video_impl(out['low_res'], (hh, ww))
      return mems, dict(out, maskmem=maskmem, ran=ran, video=video)

    return jax.lax.scan(body, mems, (images, frames, valid))

  # --- state ------------------------------------------------------------------
  def init_state(self, video_path, offload_video_to_cpu: bool = False,
                 offload_state_to_cpu: bool = False,
                 async_loading_frames: bool = False) -> VideoState:
    """The inference state of a video: a folder of JPEG frames, a video file (.mp4, ...) or
    an array [T, H, W, 3] uint8 (``memvos_jax.models.sam2.video``).

    The offload and async options are accepted and change nothing: frames stay
    on the host as uint8 (JPEGs read lazily), the state is host-side numpy and
    only a chunk of frames and the memories are on the device while tracking.
    """
    del offload_video_to_cpu, offload_state_to_cpu, async_loading_frames
    load, n, hw = load_video(video_path, self.model.image_size)
    return VideoState(load_frame=load, num_frames=n, video_hw=hw)

  def reset_state(self, inference_state: VideoState) -> None:
    """Removes every object with its prompts and outputs (the frames stay loaded)."""
    inference_state.objects.clear()

  def _features(self, state: VideoState, frame_idx: int):
    if state.cached is None or state.cached[0] != frame_idx:
      state.cached = (frame_idx, self._encode(self.params, state.load_frame(frame_idx)))
    return state.cached[1]

  def _object(self, state: VideoState, obj_id) -> ObjectState:
    if obj_id not in state.objects:
      state.objects[obj_id] = ObjectState()
    return state.objects[obj_id]

  def _check_frame(self, state, frame_idx):
    if not 0 <= frame_idx < state.num_frames:
      raise InputError('<prompt>', f'frame {frame_idx} outside the video (0..{state.num_frames - 1})')

  def _memory_arrays(self, objs, frame, reverse, cond_capacity):
    """Stacked ObjectMemory of ``objs`` for reading at ``frame`` (seeded ring, all cond frames)."""
    sign = -1 if reverse else 1
    out = []
    for obj in objs:
      a = mb.empty(cond_capacity, self.ring_size, self.feat_hw, self.model.mem_dim,
                   self.model.hidden_dim)
      for i, (t, o) in enumerate(sorted(obj.cond.items())):
        a['cond_feats'][i] = o.maskmem
        a['cond_ptr'][i], a['cond_frame'][i], a['cond_valid'][i] = o.obj_ptr, t, True
        a['cond_masks'][i], a['cond_score'][i] = o.pred_masks, o.score
      slot = 0
      for dt in range(self.ring_size, 0, -1):            # farthest first: evicted first
        o = obj.non_cond.get(frame - sign * dt)
        if o is not None and o.maskmem is not None:
          a['ring_feats'][slot], a['ring_ptr'][slot] = o.maskmem, o.obj_ptr
          a['ring_frame'][slot], a['ring_age'][slot] = frame - sign * dt, slot
          slot += 1
      a['count'] = np.asarray(slot, np.int32)
      out.append(a)
    stacked = {key: np.stack([a[key] for a in out]) for key in out[0]}
    return mb.ObjectMemory(**stacked)

  # --- prompts --------------------------------------------------------------------
  def add_new_points_or_box(self, inference_state: VideoState, frame_idx: int, obj_id,
                            points=None, labels=None, clear_old_points: bool = True,
                            normalize_coords: bool = True, box=None):
    """Clicks (labels 1 positive, 0 negative) and/or a box (x0, y0, x1, y1) for one object.

    Coordinates are video pixels (x, y), or [0, 1] with ``normalize_coords=False``.
    Returns (frame_idx, obj_ids, out_mask_logits [K, 1, H, W]): every object's
    logits on the frame, -1024 for objects without output there.
    """
    state = inference_state
    self._check_frame(state, frame_idx)
    if (points is None) != (labels is None):
      raise InputError('<prompt>', 'points and labels must be provided together')
    if points is None and box is None:
      raise InputError('<prompt>', 'at least one of points or box must be provided')
    pts = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32).reshape(-1, 2)
    lab = np.zeros((0,), np.int32) if labels is None else np.asarray(labels, np.int32).reshape(-1)
    if len(pts) != len(lab):
      raise InputError('<prompt>', f'{len(pts)} points but {len(lab)} labels')
    if box is not None:
      if not clear_old_points:
        raise InputError('<prompt>', 'a box needs clear_old_points=True (box before points)')
      pts = np.concatenate([np.asarray(box, np.float32).reshape(2, 2), pts])
      lab = np.concatenate([np.array([2, 3], np.int32), lab])
    if normalize_coords:
      h, w = state.video_hw
      pts = pts / np.array([w, h], np.float32)
    pts = (pts * self.model.image_size).astype(np.float32)

    obj = self._object(state, obj_id)
    if not clear_old_points and frame_idx in obj.points:
      old_p, old_l = obj.points[frame_idx]
      pts, lab = np.concatenate([old_p, pts]), np.concatenate([old_l, lab])
    obj.points[frame_idx] = (pts, lab)
    obj.masks.pop(frame_idx, None)

    is_init = frame_idx not in obj.tracked
    reverse = False if is_init else obj.tracked[frame_idx]
    is_cond = is_init or self.settings.add_all_frames_to_correct_as_cond
    temp = obj.temp_cond if is_cond else obj.temp_non_cond
    prev = temp.get(frame_idx) or obj.cond.get(frame_idx) or obj.non_cond.get(frame_idx)

    n = len(lab)
    st = self.settings
    multimask = st.multimask_output_in_sam and (is_init or st.multimask_output_for_tracking) and (
        st.multimask_min_pt_num <= n <= st.multimask_max_pt_num)
    p = _bucket(n + 1, 4)
    coords = np.zeros((p, 2), np.float32)
    labels_p = np.full((p,), -1, np.int32)
    coords[:n], labels_p[:n] = pts, lab
    pmask = np.arange(p) < n + 1                          # + the official padding point
    s = 4 * self.feat_hw[0]
    mask_in = np.zeros((s, s), np.float32) if prev is None else np.clip(prev.pred_masks, -32, 32)
    cap = _bucket(len(obj.cond))
    mem = jax.tree_util.tree_map(lambda x: x[0], self._memory_arrays([obj], frame_idx, reverse, cap))
    out = self._points(self.params, self._features(state, frame_idx), mem, frame_idx,
                       -1 if reverse else 1, state.num_frames, coords, labels_p, pmask, mask_in,
                       prev is not None, is_init, multimask)
    temp[frame_idx] = FrameOut(np.asarray(out['low_res']), np.asarray(out['obj_ptr']),
                               float(out['score']), None, np.asarray(out['iou']),
                               int(out['choice']))
    return frame_idx, state.obj_ids, self._consolidate(state, frame_idx, is_cond)

  def add_new_points(self, *args, **kwargs):
    """The official deprecated alias of ``add_new_points_or_box``."""
    return self.add_new_points_or_box(*args, **kwargs)

  def add_new_mask(self, inference_state: VideoState, frame_idx: int, obj_id, mask):
    """A binary mask [H, W] (any size; resized to the input size as official) for one object.

    Returns (frame_idx, obj_ids, out_mask_logits [K, 1, H, W]) as ``add_new_points_or_box``.
    """
    state = inference_state
    self._check_frame(state, frame_idx)
    mask = np.asarray(mask)
    if mask.ndim != 2:
      raise InputError('<mask>', f'mask must be 2-D, got shape {mask.shape}')
    m = np.asarray(tracking.resize_mask(jnp.asarray(mask.astype(np.float32)),
                                        self.model.image_size))
    obj = self._object(state, obj_id)
    obj.masks[frame_idx] = m
    obj.points.pop(frame_idx, None)
    is_init = frame_idx not in obj.tracked
    is_cond = is_init or self.settings.add_all_frames_to_correct_as_cond
    temp = obj.temp_cond if is_cond else obj.temp_non_cond
    out = self._mask(self.params, self._features(state, frame_idx), m)
    temp[frame_idx] = FrameOut(np.asarray(out['low_res']), np.asarray(out['obj_ptr']),
                               float(out['score']), None, None)
    return frame_idx, state.obj_ids, self._consolidate(state, frame_idx, is_cond)

  def _consolidate(self, state: VideoState, frame_idx: int, is_cond: bool) -> MaskLogits:
    """Every object's logits on the frame at video resolution (-1024 where it has none)."""
    s = 4 * self.feat_hw[0]
    low = np.full((len(state.objects), s, s), NO_OBJ_SCORE, np.float32)
    for i, obj in enumerate(state.objects.values()):
      temp = obj.temp_cond if is_cond else obj.temp_non_cond
      o = temp.get(frame_idx) or obj.cond.get(frame_idx) or obj.non_cond.get(frame_idx)
      if o is not None:
        low[i] = o.pred_masks
    return _mask_logits(self._to_video(low, state.video_hw))

  def clear_all_prompts_in_frame(self, inference_state: VideoState, frame_idx: int, obj_id,
                                 need_output: bool = True):
    """Drops the object's points or mask on the frame; a conditioning output there becomes
    a tracked (non-conditioning) one. Returns (frame_idx, obj_ids, out_mask_logits)."""
    state = inference_state
    obj = self._object(state, obj_id)
    obj.points.pop(frame_idx, None)
    obj.masks.pop(frame_idx, None)
    obj.temp_cond.pop(frame_idx, None)
    obj.temp_non_cond.pop(frame_idx, None)
    out = obj.cond.pop(frame_idx, None)
    if out is not None:
      obj.non_cond[frame_idx] = out
      obj.tracked.pop(frame_idx, None)
    if not need_output:
      return None
    return frame_idx, state.obj_ids, self._consolidate(state, frame_idx,
                                                       self._temp_cond_on(state, frame_idx))

  def remove_object(self, inference_state: VideoState, obj_id, strict: bool = False,
                    need_output: bool = True):
    """Forgets an object. Returns (obj_ids, updated_frames): for each frame the object had
    prompts on, (frame_idx, out_mask_logits [K, 1, H, W]) of the remaining objects.

    An unknown id is ignored, or an InputError with ``strict``; removing the
    last object resets the state.
    """
    state = inference_state
    if obj_id not in state.objects:
      if strict:
        raise InputError('<remove_object>', f'object id {obj_id!r} does not exist '
                         f'(object ids: {state.obj_ids})')
      return state.obj_ids, []
    if len(state.objects) == 1:
      self.reset_state(state)
      return state.obj_ids, []
    obj = state.objects.pop(obj_id)   # memories are per object: the others are untouched
    updated = []
    if need_output:
      for t in sorted(set(obj.points) | set(obj.masks)):
        updated.append((t, self._consolidate(state, t, self._temp_cond_on(state, t))))
    return state.obj_ids, updated

  @staticmethod
  def _temp_cond_on(state: VideoState, frame_idx: int) -> bool:
    return any(frame_idx in obj.temp_cond for obj in state.objects.values())

  def frame_outputs(self, state: VideoState, frame_idx: int) -> dict:
    """obj_id -> FrameOut for the frame (temporary outputs first), for inspection."""
    res = {}
    for oid, obj in state.objects.items():
      o = (obj.temp_cond.get(frame_idx) or obj.temp_non_cond.get(frame_idx)
           or obj.cond.get(frame_idx) or obj.non_cond.get(frame_idx))
      if o is not None:
        res[oid] = o
    return res

  # --- propagation ------------------------------------------------------------------
  def _preflight(self, state: VideoState):
    if not state.objects:
      raise InputError('<prompt>', 'no points or masks were added for any object')
    for oid, obj in state.objects.items():
      for temp, store in ((obj.temp_non_cond, obj.non_cond), (obj.temp_cond, obj.cond)):
        for t, o in temp.items():
          if o.maskmem is None:
            o.maskmem = np.asarray(self._memory(self.params, self._features(state, t),
                                                o.pred_masks, o.score, True))
          store[t] = o
        temp.clear()
      if not obj.cond:
        raise InputError('<prompt>', f'no points or masks were added for object {oid}')
      for t in obj.cond:
        obj.non_cond.pop(t, None)

  def propagate_in_video(self, inference_state: VideoState, start_frame_idx: int | None = None,
                         max_frame_num_to_track: int | None = None, reverse: bool = False):
    """Yields (frame_idx, obj_ids, out_mask_logits [K, 1, H, W]) frame by frame.

    From ``start_frame_idx`` (default: the first prompted frame) over at most
    ``max_frame_num_to_track`` + 1 frames, backwards with ``reverse``.
    """
    state = inference_state
    self._preflight(state)
    objs = list(state.objects.values())
    n = state.num_frames
    if start_frame_idx is None:
      start_frame_idx = min(t for o in objs for t in o.cond)
    if max_frame_num_to_track is None:
      max_frame_num_to_track = n
    if reverse:
      end = max(start_frame_idx - max_frame_num_to_track, 0)
      order = list(range(start_frame_idx, end - 1, -1)) if start_frame_idx > 0 else []
    else:
      end = min(start_frame_idx + max_frame_num_to_track, n - 1)
      order = list(range(start_frame_idx, end + 1))
    if not order:
      return
    cap = _bucket(max(len(o.cond) for o in objs))
    mems = self._memory_arrays(objs, order[0], reverse, cap)
    mems = jax.tree_util.tree_map(jnp.asarray, mems)
    sign = -1 if reverse else 1
    hw_token = jnp.zeros(state.video_hw, jnp.bool_)
    c = self.settings.chunk
    for i in range(0, len(order), c):
      part = order[i:i + c]
      idx = part + [part[-1]] * (c - len(part))
      images = np.stack([state.load_frame(t) for t in idx])
      valid = np.arange(c) < len(part)
      mems, outs = self._chunk(self.params, mems, images, np.asarray(idx, np.int32), valid, sign,
                               n, hw_token)
      outs = jax.tree_util.tree_map(np.asarray, outs)
      for j, t in enumerate(part):
        for k, obj in enumerate(objs):
          if outs['ran'][j, k]:
            obj.non_cond[t] = FrameOut(outs['low_res'][j, k], outs['obj_ptr'][j, k],
                                       float(outs['score'][j, k]), outs['maskmem'][j, k],
                                       outs['iou'][j, k], int(outs['choice'][j, k]))
          obj.tracked[t] = reverse
        yield t, state.obj_ids, _mask_logits(outs['video'][j])
