"""SAM 2 training prompts: which frames are prompted, and how (official ``SAM2Train``).

The official ``training/model/sam2.py`` draws its prompt choices once per
forward pass from one numpy generator (seed 42, the same on every GPU), so
they are shared by the whole batch: mask or point input, how many initial
conditioning frames and which, box or click on each, which frames get
correction clicks, and per correction round whether the click comes from
the ground truth instead of the error. Here they come from a JAX key folded
from ``training.seed`` and the step (``make_plan``), so a resumed run draws
the same prompts, and they stay batch-wide scalars: the unroll branches on
them with ``lax.cond`` and computes only the path taken.

Per object, the clicks themselves (``sample_point``: uniform over the error
region, official ``sample_random_points_from_errors``) and the box noise
(``sample_box``, official ``sample_box_points``) use a key per object
(the official draws them per object with ``torch.rand``).
"""

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class PromptSettings:
  """The official ``SAM2Train`` training options (names without ``_for_train``)."""
  num_frames: int = 8
  prob_to_use_pt_input: float = 0.5
  prob_to_use_box_input: float = 0.5
  prob_to_sample_from_gt: float = 0.1
  num_frames_to_correct: int = 2
  rand_frames_to_correct: bool = True
  num_init_cond_frames: int = 2
  rand_init_cond_frames: bool = True
  num_correction_pt_per_frame: int = 7
  add_all_frames_to_correct_as_cond: bool = True

  @property
  def cond_capacity(self) -> int:
    """Conditioning frames an object can have: the initial ones, plus the corrected
    ones when those become conditioning frames."""
    n = self.num_init_cond_frames
    if self.add_all_frames_to_correct_as_cond and self.prob_to_use_pt_input > 0:
      n = max(n, self.num_frames_to_correct)
    return n

  @property
  def num_points(self) -> int:
    """Point slots of a frame: 2 (a click, or a box's two corners), the corrections, the pad."""
    return 2 + self.num_correction_pt_per_frame + 1


@flax.struct.dataclass
class Plan:
  """One step's prompt choices, shared by the batch (traced scalars and small arrays).

  init_frames [C0] int32: frame of initial conditioning slot i (slot 0: frame 0);
  init_valid [C0] bool; box [C0] bool (points input: a box instead of a click);
  correct [T] bool: frames that get correction clicks (points input only);
  from_gt [T, n] bool: correction round i of frame t clicks from the ground truth.
  """
  use_points: jax.Array
  init_frames: jax.Array
  init_valid: jax.Array
  box: jax.Array
  correct: jax.Array
  from_gt: jax.Array


def make_plan(key, s: PromptSettings) -> Plan:
  """The official ``prepare_prompt_inputs`` choices, drawn from ``key``.

  Frame 0 is always an initial conditioning frame; with
  ``rand_init_cond_frames`` 1..num_init_cond_frames of them, the others
  distinct random frames. With points, corrections go to the initial
  conditioning frames plus (``rand_frames_to_correct``: a random number
  up to num_frames_to_correct) random other frames. One random order of
  frames 1..T-1 serves both choices: its first entries are the extra
  initial conditioning frames, the next ones the extra corrected frames
  (a uniform choice among the frames not yet taken, as the official
  ``rng.choice(..., replace=False)``).
  """
  t_len, c0, n_corr = s.num_frames, s.num_init_cond_frames, s.num_correction_pt_per_frame
  k_pt, k_init, k_order, k_corr, k_box, k_gt = jax.random.split(key, 6)
  use_points = jax.random.uniform(k_pt) < s.prob_to_use_pt_input
  n_init = jnp.asarray(c0, jnp.int32)
  if s.rand_init_cond_frames and c0 > 1:
    n_init = jax.random.randint(k_init, (), 1, c0 + 1)
  order = jax.random.permutation(k_order, jnp.arange(1, t_len, dtype=jnp.int32))
  rank = jnp.full((t_len,), -1, jnp.int32).at[order].set(jnp.arange(t_len - 1, dtype=jnp.int32))
  init_frames = jnp.concatenate([jnp.zeros((1,), jnp.int32), order[:c0 - 1]])
  init_valid = jnp.arange(c0) < n_init
  n_correct = jnp.asarray(max(s.num_frames_to_correct, 1), jnp.int32)
  if s.rand_frames_to_correct and s.num_frames_to_correct > 1:
    n_correct = jnp.where(n_correct > n_init,
                          jax.random.randint(k_corr, (), n_init, n_correct + 1), n_correct)
  n_correct = jnp.maximum(n_correct, n_init)   # the initial frames are always corrected
  correct = use_points & (rank < n_correct - 1)   # frame 0 (rank -1) and the first ranks
  box = use_points & (jax.random.uniform(k_box, (c0,)) < s.prob_to_use_box_input)
  from_gt = jax.random.uniform(k_gt, (t_len, n_corr)) < s.prob_to_sample_from_gt
  return Plan(use_points=use_points, init_frames=init_frames, init_valid=init_valid, box=box,
              correct=correct, from_gt=from_gt)


def sample_point(key, gt, pred):
  """One click from the error of ``pred`` against ``gt`` (both [H, W] bool).

  Official ``sample_random_points_from_errors``: uniform noise on the false
  positives (channel 0, a negative click) and the false negatives (channel
  1, a positive click), the argmax of the flattened [H, W, 2] noise; when
  ``pred`` equals ``gt`` everywhere, a negative click on the background.
  Returns (xy [2] float32 pixels, label [] int32: 1 positive, 0 negative).
  """
  h, w = gt.shape
  fp = ~gt & pred
  fn = gt & ~pred
  all_correct = jnp.all(gt == pred)
  noise = jax.random.uniform(key, (h, w, 2))
  noise = noise * jnp.stack([fp | (all_correct & ~gt), fn], axis=-1)
  idx = jnp.argmax(noise.reshape(-1))
  label = (idx % 2).astype(jnp.int32)
  pix = idx // 2
  xy = jnp.stack([pix % w, pix // w]).astype(jnp.float32)
  return xy, label


def mask_to_box(gt):
  """[H, W] bool -> [4] (x0, y0, x1, y1) float32; an empty mask gives (W, H, -1, -1) as official."""
  h, w = gt.shape
  xs = jnp.arange(w, dtype=jnp.int32)[None, :]
  ys = jnp.arange(h, dtype=jnp.int32)[:, None]
  x0 = jnp.min(jnp.where(gt, xs, w))
  x1 = jnp.max(jnp.where(gt, xs, -1))
  y0 = jnp.min(jnp.where(gt, ys, h))
  y1 = jnp.max(jnp.where(gt, ys, -1))
  return jnp.stack([x0, y0, x1, y1]).astype(jnp.float32)


def sample_box(key, gt, noise: float = 0.1, noise_bound: float = 20.0):
  """A noisy box of ``gt`` [H, W] bool as two corner points (official ``sample_box_points``).

  Each coordinate moves uniformly by up to ``noise`` of the box's width
  (height), at most ``noise_bound`` pixels, then is clamped to the image.
  Returns (xy [2, 2] float32, labels [2] int32 = (2, 3): top-left, bottom-right).
  """
  h, w = gt.shape
  box = mask_to_box(gt)
  max_dx = jnp.minimum((box[2] - box[0]) * noise, noise_bound)
  max_dy = jnp.minimum((box[3] - box[1]) * noise, noise_bound)
  jitter = 2.0 * jax.random.uniform(key, (4,)) - 1.0
  box = box + jitter * jnp.stack([max_dx, max_dy, max_dx, max_dy])
  box = jnp.clip(box, 0.0, jnp.asarray([w - 1, h - 1, w - 1, h - 1], jnp.float32))
  return box.reshape(2, 2), jnp.asarray([2, 3], jnp.int32)


def use_multimask(is_init_cond, num_points, multimask_output_in_sam: bool,
                  multimask_output_for_tracking: bool, min_pt: int, max_pt: int):
  """Official ``_use_multimask``: three candidate masks, or one (traced bools/ints)."""
  if not multimask_output_in_sam:
    return jnp.asarray(False)
  return ((is_init_cond | multimask_output_for_tracking)
          & (min_pt <= num_points) & (num_points <= max_pt))
