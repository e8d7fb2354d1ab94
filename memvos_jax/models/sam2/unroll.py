"""SAM 2 unrolled over a batch of training clips (official training/model/sam2.py ``SAM2Train``).

The objects of a clip share its image features and are tracked
independently (vmapped, as the official flattens them into its batch).
The prompt choices are a ``prompts.Plan`` shared by the batch.

Order of work, as the official ``forward_tracking``: the initial
conditioning frames first (frame 0 and, per the plan, another), each with
no memory (``no_mem_embed`` added to its features) and its prompt: the
ground-truth mask (``_use_mask_as_output``: the mask itself is the output
and the decoder only makes the object pointer) or, with point input, a
click or a noisy box followed by ``num_correction_pt_per_frame`` correction
clicks. Then every other frame in time order: memory attention over the
conditioning frames (all of them, with the pointers of later ones too:
training reads no ``only_obj_ptrs_in_the_past``) and the 6 previous
tracked frames, the SAM heads with no prompt (3 candidate masks for
tracking), and, on a frame picked for correction, the correction clicks
with the previous mask logits as mask prompt; such a frame then becomes a
conditioning frame (``add_all_frames_to_correct_as_cond``). Each frame's
final mask is encoded into memory from its sigmoid (training never
binarises) and written to the conditioning slots or the ring of tracked
frames. Nothing is detached: gradients flow through the memory, the object
pointers and the mask prompts of the correction rounds, as the official.

Every prediction step of every frame is returned for the loss as three
candidate masks: a single-mask output (a box, the correction rounds, a mask
prompt) is repeated three times, which leaves the official multi-mask
selection and the mean IoU loss unchanged (``train_loss``) and keeps the
shapes static. A mask prompt's output is the ground truth at +-10
(``mask_prompt``); the loss rebuilds it at full resolution.

Static shapes, few branches: the frames are processed in a traced order
(the initial conditioning slots, then the other frames in time order) with
their real frame numbers, which the memory reads by, so which frames are
prompted needs no control flow; the choices left (mask or points, a second
initial frame or not, corrections on a tracked frame or not) are
batch-wide scalars, branched on by ``lax.cond`` outside the vmaps over
samples and objects, so only the branch taken runs and it differentiates
cheaply. ``use_scan`` runs the tracked frames and the correction rounds as
``lax.scan`` instead of Python loops (``training.clip_loop``). The Python
loops call their body, and the initial slots their prompt, through an inner
``jax.jit``: traced once, inlined by XLA (64 px, 4 frames, 3 correction
clicks: train.py 142 s -> 119 s on 2 cores; the same forward, the gradients
summed in another order).
"""

import dataclasses

import jax
import jax.numpy as jnp

import memvos_jax.models.sam2.memory_bank as mb
import memvos_jax.models.sam2.prompts as prompts
import memvos_jax.models.sam2.tracking as tracking
from memvos_jax.models.sam2.common import sine_pe_2d
from memvos_jax.models.sam2.inference import Sam2Settings
from memvos_jax.models.sam2.modeling import IMG_MEAN, IMG_STD, NO_OBJ_SCORE
from memvos_jax.models.sam2.prompts import PromptSettings


@dataclasses.dataclass(frozen=True)
class UnrollSettings:
  """Static options of the training unroll."""
  prompts: PromptSettings = PromptSettings()
  model: Sam2Settings = Sam2Settings()   # multimask rule, pointer reach (official names)
  freeze_image_encoder: bool = False
  use_scan: bool = False
  # The memory as the inference predictor keeps it (features stored in bfloat16, a mask
  # prompt's memory from its binarised upsampled output), not as training does: for the
  # check that the unroll tracks exactly as the inference scan (tests/test_sam2_training.py).
  inference_memory: bool = False

  @property
  def num_steps(self) -> int:
    """Prediction steps per frame: the first pass and the correction rounds."""
    return 1 + self.prompts.num_correction_pt_per_frame


# --- the image, once per frame ---------------------------------------------------------------


def _encode_frame(m, image, frozen: bool):
  """``forward_image`` of one frame [S, S, 3] uint8 (``frozen``: no gradient into the encoder)."""
  x = image.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(IMG_MEAN, jnp.float32)) / jnp.asarray(IMG_STD, jnp.float32)
  feats, pos = m.image_encoder(x[None])
  feats = [f[0] for f in feats]
  if frozen:
    feats = [jax.lax.stop_gradient(f) for f in feats]
  s0, s1 = m.sam_mask_decoder.project_high_res(feats[0], feats[1])
  self0 = m.memory_attention.first_self_attention(feats[2], pos[2])
  return dict(vision=feats[2], s0=s0, s1=s1, self0=self0)


def encode_frames(model, params, frames, frozen: bool = False):
  """frames [T, S, S, 3] uint8 -> per-frame features (stacked over T) and ``vision_pos``."""
  feats = jax.vmap(lambda im: model.apply(params, im, frozen, method=_encode_frame))(frames)
  h, w, c = feats['vision'].shape[1:]
  feats['vision_pos'] = jnp.asarray(sine_pe_2d(h, w, c))
  return feats


# --- the SAM heads in training mode ----------------------------------------------------------


def _heads(m, pix, s0, s1, coords, labels, point_valid, mask_input, multimask):
  """``_forward_sam_heads`` in training mode (no dynamic-stability choice), one object.

  mask_input: [4h, 4w] logits, or None. Returns the three candidate masks
  [3, 4h, 4w] (or mask 0 three times), their IoU predictions [3], the
  object score [], the chosen mask [4h, 4w] and the object pointer [C].
  """
  pe = m.sam_prompt_encoder
  sparse = pe.embed_points(coords, labels)
  dense = pe.no_mask() if mask_input is None else pe.embed_mask(mask_input)
  masks, iou, tokens, score = m.sam_mask_decoder(pix, pe.dense_pe(), sparse, point_valid,
                                                 dense, s0, s1)
  appearing = score > 0
  masks = jnp.where(appearing, masks, NO_OBJ_SCORE)
  best = 1 + jnp.argmax(iou[1:])
  choice = jnp.where(multimask, best, 0)
  cand = jnp.where(multimask, masks[1:], jnp.broadcast_to(masks[:1], masks[1:].shape))
  cand_iou = jnp.where(multimask, iou[1:], jnp.broadcast_to(iou[:1], iou[1:].shape))
  lam = appearing.astype(jnp.float32)
  obj_ptr = lam * m.obj_ptr_proj(tokens[choice]) + (1 - lam) * m.no_obj_ptr[0]
  return dict(cand=cand, cand_iou=cand_iou, score=score, low=masks[choice], obj_ptr=obj_ptr)


def _mask_output(m, vision, s0, s1, mask):
  """``_use_mask_as_output`` for a binary mask [S, S]: its low-res logits, score, pointer."""
  out = m.mask_as_output(vision, s0, s1, mask)
  return dict(low=out['low_res'], score=out['score'], obj_ptr=out['obj_ptr'])


# --- the clip batch ----------------------------------------------------------------------------


def _empty_memory(model, s: UnrollSettings, hw):
  """A float32 ``ObjectMemory`` (training keeps the memory in float32)."""
  t_len = s.prompts.num_frames
  ring = max(model.num_maskmem - 1, min(t_len, s.model.max_obj_ptrs_in_encoder) - 1, 1)
  cc = s.prompts.cond_capacity
  h, w = hw
  z = jnp.zeros
  return mb.ObjectMemory(
      cond_feats=z((cc, h, w, model.mem_dim)), cond_ptr=z((cc, model.hidden_dim)),
      cond_frame=jnp.full((cc,), -1, jnp.int32), cond_valid=z((cc,), bool),
      cond_masks=z((cc, 4 * h, 4 * w)), cond_score=z((cc,)),
      ring_feats=z((ring, h, w, model.mem_dim)), ring_ptr=z((ring, model.hidden_dim)),
      ring_frame=jnp.full((ring,), -1, jnp.int32), ring_age=z((ring,), jnp.int32),
      count=z((), jnp.int32))


def _loop(body, carry, n: int, use_scan: bool):
  """``carry, ys = body(carry, i)`` for i in 0..n-1, as a scan or a Python loop; ys stacked."""
  if n == 0:
    return carry, None
  if use_scan:
    return jax.lax.scan(body, carry, jnp.arange(n))
  step = jax.jit(body)    # unrolled, but traced once: every i has the same shapes
  ys = []
  for i in range(n):
    carry, y = step(carry, jnp.int32(i))
    ys.append(y)
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)


def _objects(fn):
  """``fn(per_sample, *per_object)`` over samples (axis 0 of all) and objects (axis 1 of the
  per-object arguments)."""
  def run(shared, *per_object):
    inner = jax.vmap(fn, in_axes=(None,) + (0,) * len(per_object))
    return jax.vmap(inner)(shared, *per_object)
  return run


def _where(ok, a, b):
  return jax.tree.map(lambda x, y: jnp.where(ok, x, y), a, b)


LOSS_KEYS = ('cand', 'cand_iou', 'score', 'step_valid', 'mask_prompt', 'final')


def unroll(model, variables, s: UnrollSettings, plan: prompts.Plan, frames, targets, keys):
  """The clips of a batch, every object (official ``SAM2Train.forward``).

  frames [B, T, S, S, 3] uint8; targets [B, K, T, S, S] bool; keys [B, K]
  (each object's randomness: clicks, box noise). Returns the frames in
  processing order, P = C0 + T - 1 entries (the C0 initial conditioning
  slots, then the other frames in time order, padded): ``frame`` [P],
  ``valid`` [P] (an entry that ran), ``cond`` [P] (an initial conditioning
  frame), and per object [B, K, P, ...]: ``cand`` [n, 3, 4h, 4w] candidate
  mask logits of each of the n = 1 + num_correction_pt_per_frame prediction
  steps, ``cand_iou`` [n, 3], ``score`` [n], ``step_valid`` [n] (the steps that
  ran), ``mask_prompt`` [] (step 0 is the ground-truth mask itself) and
  ``final`` [4h, 4w] (the frame's output logits).
  """
  model = model.clone(compact_graph=True)
  ps, ms = s.prompts, s.model
  t_len, n_corr, n_steps = ps.num_frames, ps.num_correction_pt_per_frame, s.num_steps
  n_pts = ps.num_points
  apply = model.apply
  b, k = keys.shape
  multimask_rule = lambda is_init, n: prompts.use_multimask(
      is_init, n, ms.multimask_output_in_sam, ms.multimask_output_for_tracking,
      ms.multimask_min_pt_num, ms.multimask_max_pt_num)

  feats = jax.vmap(lambda fr: encode_frames(model, variables, fr, s.freeze_image_encoder))(frames)
  hw = feats['vision'].shape[2:4]

  # --- one object's pieces (vmapped over samples and objects by ``_objects``) ---

  def frame_feats(fb, f):
    return {key: fb[key][f] for key in ('vision', 's0', 's1', 'self0')}

  def heads(pix, ff, points, mask_input, multimask):
    coords, labels, valid, _ = points
    return apply(variables, pix, ff['s0'], ff['s1'], coords, labels, valid, mask_input,
                 multimask, method=_heads)

  def no_points():
    """No prompt: the official dummy point (slot 0) and the padding point (last slot), both
    label -1 (``_forward_sam_heads`` pads an empty prompt, the prompt encoder adds its pad)."""
    coords = jnp.zeros((n_pts, 2), jnp.float32)
    labels = jnp.full((n_pts,), -1, jnp.int32)
    valid = jnp.zeros((n_pts,), bool).at[0].set(True).at[n_pts - 1].set(True)
    return coords, labels, valid, jnp.zeros((), jnp.int32)

  def record(first, rounds=None):
    """The per-step outputs of a frame: step 0 ``first``, then the correction ``rounds``."""
    def put(name):
      a = first[name][None]
      rest = rounds[name] if rounds is not None else jnp.zeros((n_corr,) + a.shape[1:], a.dtype)
      return jnp.concatenate([a, rest], axis=0)
    valid = jnp.arange(n_steps) < (n_steps if rounds is not None else 1)
    return dict(cand=put('cand'), cand_iou=put('cand_iou'), score=put('score'), step_valid=valid)

  def corrections(ff, pix, gt, first, points, f, is_init, key):
    """``_iter_correct_pt_sampling``: n_corr rounds of a click from the error of the previous
    mask, with its logits as mask prompt. Returns the stacked rounds and the last one."""
    kf = jax.random.fold_in(key, f)

    def body(carry, i):
      (coords, labels, valid, count), prev = carry
      pred = jnp.where(plan.from_gt[f, i], False, tracking.high_res(model, prev['low']) > 0)
      xy, label = prompts.sample_point(jax.random.fold_in(kf, 2 + i), gt, pred)
      coords = coords.at[2 + i].set(xy)
      labels = labels.at[2 + i].set(label)
      # The first click on a frame without points replaces the dummy point (concat_points).
      valid = valid.at[0].set(valid[0] & (labels[0] != -1)).at[2 + i].set(True)
      points = (coords, labels, valid, count + 1)
      out = heads(pix, ff, points, prev['low'], multimask_rule(is_init, count + 1))
      return (points, out), out

    (_, last), rounds = _loop(body, (points, first), n_corr, s.use_scan)
    return rounds, last

  def finish(ff, steps, low, score, obj_ptr, mask_prompt, high=None):
    """The frame's output and its memory (the sigmoid of the logits: training never
    binarises, official ``_encode_new_memory``)."""
    if high is None or s.inference_memory:
      high = tracking.high_res(model, low)
    mem = apply(variables, ff['vision'], high, score, mask_prompt and s.inference_memory,
                method='encode_memory')
    if s.inference_memory:
      mem = mem.astype(jnp.bfloat16).astype(jnp.float32)
    return dict(steps, mask_prompt=jnp.asarray(mask_prompt), final=low, final_score=score,
                obj_ptr=obj_ptr, mem=mem)

  def prompt_mask(fb, target, key, f):
    """An initial conditioning frame given its mask (``_use_mask_as_output``)."""
    del key
    ff = frame_feats(fb, f)
    mask = target[f].astype(jnp.float32)
    out = apply(variables, ff['vision'], ff['s0'], ff['s1'], mask, method=_mask_output)
    first = dict(cand=jnp.broadcast_to(out['low'], (3,) + out['low'].shape),
                 cand_iou=jnp.ones((3,), jnp.float32), score=out['score'])
    return finish(ff, record(first), out['low'], out['score'], out['obj_ptr'], True,
                  high=mask * 20.0 - 10.0)

  def prompt_points(fb, target, key, f, use_box):
    """An initial conditioning frame given a click or a box, then the correction clicks."""
    ff = frame_feats(fb, f)
    gt = target[f]
    kf = jax.random.fold_in(key, f)
    click, click_label = prompts.sample_point(jax.random.fold_in(kf, 0), gt, jnp.zeros_like(gt))
    corners, corner_labels = prompts.sample_box(jax.random.fold_in(kf, 1), gt)
    coords, labels, valid, _ = no_points()
    coords = coords.at[:2].set(jnp.where(use_box, corners, jnp.stack([click, click])))
    labels = labels.at[:2].set(jnp.where(use_box, corner_labels,
                                         jnp.stack([click_label, jnp.int32(-1)])))
    valid = valid.at[:2].set(jnp.stack([jnp.asarray(True), use_box]))
    points = (coords, labels, valid, 1 + use_box.astype(jnp.int32))
    pix = apply(variables, ff['vision'], method='no_memory')
    first = heads(pix, ff, points, None, multimask_rule(True, points[3]))
    rounds, last = corrections(ff, pix, gt, first, points, f, True, key)
    return finish(ff, record(first, rounds), last['low'], last['score'], last['obj_ptr'], False)

  def track_first(fb, mem, f):
    """A tracked frame: memory attention, then the heads with no prompt."""
    ff = frame_feats(fb, f)
    read = mb.read(mem, f, 1, t_len, model.num_maskmem, ms.max_obj_ptrs_in_encoder,
                   past_cond_ptrs_only=False)
    memory, mpos, kmask, ns = apply(variables, *read, method='memory_tokens')
    pix = apply(variables, ff['vision'], fb['vision_pos'], memory, mpos, kmask, ns, ff['self0'],
                method='attend_memory')
    return pix, heads(pix, ff, no_points(), None, multimask_rule(False, 0))

  def track_correct(fb, target, key, pix, first, f):
    ff = frame_feats(fb, f)
    rounds, last = corrections(ff, pix, target[f], first, no_points(), f, False, key)
    return record(first, rounds), last

  def track_finish(fb, steps, last, f):
    return finish(frame_feats(fb, f), steps, last['low'], last['score'], last['obj_ptr'], False)

  def write(mem, out, f, as_cond):
    cond = mb.write_cond(mem, out['mem'], out['obj_ptr'], f, out['final'], out['final_score'])
    ring = mb.write(mem, out['mem'], out['obj_ptr'], f)
    return _where(as_cond, cond, ring)

  write_all = lambda mem, out, f, as_cond: jax.vmap(jax.vmap(
      lambda m, o: write(m, o, f, as_cond)))(mem, out)

  # --- the initial conditioning frames first: no memory, their prompts ---

  mem = jax.tree.map(lambda a: jnp.broadcast_to(a, (b, k) + a.shape),
                     _empty_memory(model, s, hw))
  entries, first_out = [], None
  @jax.jit    # one trace for every slot: the slots call it with the same shapes
  def prompted(f, use_box):
    return jax.lax.cond(
        plan.use_points,
        lambda: _objects(lambda fb, tg, ky: prompt_points(fb, tg, ky, f, use_box))(
            feats, targets, keys),
        lambda: _objects(lambda fb, tg, ky: prompt_mask(fb, tg, ky, f))(feats, targets, keys))

  for slot in range(ps.num_init_cond_frames):
    f = plan.init_frames[slot]
    compute = lambda f=f, slot=slot: prompted(f, plan.box[slot])
    if slot == 0:
      out = first_out = compute()
    else:
      out = jax.lax.cond(plan.init_valid[slot], compute,
                         lambda: jax.tree.map(jnp.zeros_like, first_out))
    mem = _where(plan.init_valid[slot], write_all(mem, out, f, True), mem)
    entries.append({name: out[name] for name in LOSS_KEYS})

  # --- then the other frames in time order (the last entry is padding with 2 initial frames) ---

  frames_t = jnp.arange(t_len)
  is_init = jnp.any((plan.init_frames[None] == frames_t[:, None]) & plan.init_valid[None], axis=1)
  order = jnp.argsort(jnp.where(is_init, t_len + frames_t, frames_t))[:t_len - 1]
  order_ok = ~is_init[order]

  def tracked(mem, p):
    f, ok = order[p], order_ok[p]
    pix, first = _objects(lambda fb, m: track_first(fb, m, f))(feats, mem)
    corrected = plan.correct[f] & ok
    steps, last = jax.lax.cond(
        corrected,
        lambda: _objects(lambda fb, tg, ky, px, fi: track_correct(fb, tg, ky, px, fi, f))(
            feats, targets, keys, pix, first),
        lambda: jax.vmap(jax.vmap(lambda fi: (record(fi), fi)))(first))
    out = _objects(lambda fb, st, la: track_finish(fb, st, la, f))(feats, steps, last)
    as_cond = corrected if ps.add_all_frames_to_correct_as_cond else jnp.asarray(False)
    mem = _where(ok, write_all(mem, out, f, as_cond), mem)
    return mem, {name: out[name] for name in LOSS_KEYS}

  _, later = _loop(tracked, mem, t_len - 1, s.use_scan)
  first = jax.tree.map(lambda *a: jnp.stack(a), *entries)
  outs = jax.tree.map(lambda a, c: jnp.moveaxis(jnp.concatenate([a, c]), 0, 2), first, later)
  c0 = ps.num_init_cond_frames
  return dict(outs, frame=jnp.concatenate([plan.init_frames, order]),
              valid=jnp.concatenate([plan.init_valid, order_ok]),
              cond=jnp.arange(c0 + t_len - 1) < c0)
