"""SAM 2 training / fine-tuning (official ``training/``): prompts, optimiser, loss, train.py runs.

The cheap tests check the prompt simulation (``prompts``), the optimiser
(``optim``: layer decay, weight-decay mask, the frozen image encoder) and the
training loss against the official-parity loss (``loss.multistep_loss``,
itself checked against the official code in ``test_loss_parity.py``) on
hand-made outputs. The slow ones train SAM 2.1-T at 64 px (``SMALL``): train.py
runs 4 steps on clips of 2 frames, fine-tuning an official-format checkpoint
(../shared's random-initialised fixture; random weights without ../shared): a
metrics row per step and the checkpoint, the loss falls on one clip, and the
weights moved from the converted checkpoint's, not from random ones.
"""

import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memvos_jax.configs import sam2 as sam2_config
from memvos_jax.models.sam2 import FAMILY, loss as official_loss, optim, prompts, tracking
from memvos_jax.models.sam2 import train_loss
from memvos_jax.training import checkpointing

from conftest import (CHILD_TIMEOUT_S, REPO, SHARED, child_env, metric_rows, need_shared,
                      official_state)

pytestmark = pytest.mark.fast_compile   # ours against ours and a transcription

# SAM 2.1-T at 64 px, 3 frames, 2 object slots, 1 correction click: every prompt path, small.
SMALL = {'network.image_size': 64, 'training.crop_size': 64, 'training.num_frames': 3,
         'training.batch_size': 1, 'training.max_objects': 2,
         'training.num_correction_pt_per_frame': 1, 'training.progress': False,
         'data.threads': 0}


def small_config(**overrides):
  c = sam2_config.get_config('train_tiny')
  with c.unlocked():
    for key, value in {**SMALL, **overrides}.items():
      node, _, leaf = key.rpartition('.')
      c[node][leaf] = value
  return c


# ---------------------------------------------------------------- prompts


def test_clicks_are_sampled_from_the_error_region():
  gt = np.zeros((12, 12), bool)
  gt[2:8, 3:9] = True
  pred = np.zeros((12, 12), bool)
  pred[4:10, 3:9] = True          # rows 2-3 missed (false negatives), rows 8-9 extra
  keys = jax.random.split(jax.random.key(0), 400)
  xy, label = jax.vmap(lambda k: prompts.sample_point(k, jnp.asarray(gt), jnp.asarray(pred)))(keys)
  xy, label = np.asarray(xy, int), np.asarray(label)
  fn, fp = gt & ~pred, ~gt & pred
  assert all((fn if lab else fp)[y, x] for (x, y), lab in zip(xy, label))
  assert 0.35 < label.mean() < 0.65            # 12 FN and 12 FP pixels: half each
  assert len({tuple(p) for p in xy}) > 20       # uniform over them, not one pixel
  # A perfect prediction: a negative click on the background (official).
  xy, label = prompts.sample_point(jax.random.key(1), jnp.asarray(gt), jnp.asarray(gt))
  assert int(label) == 0 and not gt[int(xy[1]), int(xy[0])]
  # No prediction (initial click): a positive click on the object.
  xy, label = prompts.sample_point(jax.random.key(2), jnp.asarray(gt), jnp.zeros_like(gt))
  assert int(label) == 1 and gt[int(xy[1]), int(xy[0])]


def test_box_corners_are_the_noisy_box_of_the_mask():
  gt = np.zeros((64, 64), bool)
  gt[10:31, 20:51] = True                      # x 20..50, y 10..30
  corners, labels = prompts.sample_box(jax.random.key(0), jnp.asarray(gt))
  assert labels.tolist() == [2, 3]
  want = np.array([[20, 10], [50, 30]], np.float32)
  bound = np.array([3.0, 2.0], np.float32)     # 10 % of the box's width, height
  assert np.all(np.abs(np.asarray(corners) - want) <= bound + 1e-5)
  np.testing.assert_array_equal(prompts.mask_to_box(jnp.asarray(gt)), [20, 10, 50, 30])


def test_plan_follows_the_official_prompt_choices():
  s = prompts.PromptSettings(num_frames=8)
  plans = jax.vmap(lambda k: prompts.make_plan(k, s))(jax.random.split(jax.random.key(3), 2000))
  p = jax.tree.map(np.asarray, plans)
  assert (p.init_frames[:, 0] == 0).all() and p.init_valid[:, 0].all()
  assert (p.init_frames[:, 1] >= 1).all()                                # a distinct other frame
  two = p.init_valid[:, 1]
  assert abs(p.use_points.mean() - 0.5) < 0.04 and abs(two.mean() - 0.5) < 0.04
  assert abs(p.box[p.use_points].mean() - 0.5) < 0.05 and not p.box[~p.use_points].any()
  assert not p.correct[~p.use_points].any()              # no corrections with mask input
  pts = p.use_points
  assert p.correct[pts, 0].all()                         # the initial frames are corrected
  rows = np.arange(len(p.correct))
  assert p.correct[rows[pts & two], p.init_frames[pts & two, 1]].all()
  n = p.correct.sum(1)
  assert set(n[pts & two]) == {2}                         # 2 initial frames: those 2
  assert set(n[pts & ~two]) == {1, 2}                     # 1 initial frame: + 0 or 1 frame
  assert abs((n[pts & ~two] == 2).mean() - 0.5) < 0.07
  assert abs(p.from_gt.mean() - 0.1) < 0.01
  again = prompts.make_plan(jax.random.split(jax.random.key(3), 2000)[7], s)
  assert jax.tree.map(lambda a, b: bool(np.array_equal(a, b[7])), again, p) == jax.tree.map(
      lambda _: True, again)


# ---------------------------------------------------------------- optimiser


def test_optimizer_is_the_official_adamw_with_layer_decay():
  c = sam2_config.get_config('tiny')
  s = lambda path: optim.lr_scale(path, c)
  v = 0.6                                                    # vision_lr / base_lr
  assert s('sam_mask_decoder/iou_token/weight/') == 1.0
  assert s('image_encoder/neck/convs_0_conv/kernel/') == pytest.approx(v)
  assert s('image_encoder/trunk/pos_embed/') == pytest.approx(v)           # override 1.0
  assert s('image_encoder/trunk/patch_embed_proj/kernel/') == pytest.approx(v * 0.9 ** 13)
  assert s('image_encoder/trunk/blocks_0/mlp/layers_0/kernel/') == pytest.approx(v * 0.9 ** 12)
  assert s('image_encoder/trunk/blocks_11/attn/qkv/bias/') == pytest.approx(v * 0.9)
  assert not optim.decays('sam_mask_decoder/transformer/layers_0/norm1/scale/')   # LayerNorm
  assert not optim.decays('memory_attention/layers_0/linear1/bias/')
  assert optim.decays('memory_encoder/fuser_layers_0/norm/scale/')                # LayerNorm2d
  assert optim.decays('sam_mask_decoder/output_upscaling_1/scale/')
  assert optim.decays('memory_attention/layers_0/linear1/kernel/')
  lr = optim.lr_schedule(c)
  assert float(lr(0)) == pytest.approx(5e-6)
  assert float(lr(c.training.num_steps // 2)) == pytest.approx(2.75e-6)
  assert float(lr(c.training.num_steps)) == pytest.approx(5e-7)


def test_frozen_image_encoder_gets_no_update_and_adamw_decays_the_rest():
  c = sam2_config.get_config('tiny')
  with c.unlocked():
    c.training.freeze_image_encoder = True
    c.training.grad_clip_norm = 0.0
  params = {'image_encoder': {'trunk': {'blocks_0': {'proj': {'kernel': jnp.ones((2, 2))}}}},
            'obj_ptr_proj': {'layers_0': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones((2,))}}}
  tx, _ = optim.make(c)
  grads = jax.tree.map(lambda x: 0.5 * jnp.ones_like(x), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(new['image_encoder']['trunk']['blocks_0']['proj']['kernel'], 1.0)
  lr = 5e-6
  # torch AdamW, first step: p - lr * (sign(g) + wd * p); no decay on biases.
  np.testing.assert_allclose(new['obj_ptr_proj']['layers_0']['kernel'], 1 - lr * (1 + 0.1),
                             rtol=1e-6)
  np.testing.assert_allclose(new['obj_ptr_proj']['layers_0']['bias'], 1 - lr, rtol=1e-6)


# ---------------------------------------------------------------- loss


def test_training_loss_matches_the_official_multistep_loss():
  """Hand-made unroll outputs (a mask prompt, a click with a correction round, a tracked
  frame, a padding entry; objects present, absent, invalid) against ``multistep_loss`` on
  the same outputs in the official layout (M = 1 or 3 masks per step)."""
  rng = np.random.default_rng(0)
  s, t_len, n_steps = 16, 3, 2
  model = types.SimpleNamespace(image_size=s)
  valid = np.array([[True, True, False], [True, False, False]])
  b, k = valid.shape
  targets = rng.random((b, k, t_len, s, s)) < 0.3
  targets[0, 1, 1] = False                                   # object absent on frame 1
  # Entries in processing order: mask prompt on frame 0, click on frame 2 (+1 correction),
  # frame 1 tracked, padding (frame 2 again, not run).
  frame = np.array([0, 2, 1, 2])
  entry_valid = np.array([True, True, True, False])
  p = len(frame)
  low = rng.normal(0, 3, (b, k, p, n_steps, 3, s // 4, s // 4)).astype(np.float32)
  single = np.zeros((p, n_steps), bool)
  single[0, 0] = single[1, 1] = True                         # mask prompt; correction round
  low = np.where(single[None, None, :, :, None, None, None], low[..., :1, :, :], low)
  ious = rng.random((b, k, p, n_steps, 3)).astype(np.float32)
  ious = np.where(single[None, None, :, :, None], ious[..., :1], ious)
  ious[:, :, 0, 0] = 1.0
  score = rng.normal(0, 2, (b, k, p, n_steps)).astype(np.float32)
  present = targets[:, :, 0].reshape(b, k, -1).any(-1)
  score[:, :, 0, 0] = np.where(present, 10.0, -10.0)
  step_valid = np.array([[True, False], [True, True], [True, False], [True, False]])
  outs = {'cand': jnp.asarray(low), 'cand_iou': jnp.asarray(ious), 'score': jnp.asarray(score),
          'mask_prompt': jnp.asarray(np.broadcast_to([True, False, False, False], (b, k, p))),
          'step_valid': jnp.asarray(np.broadcast_to(step_valid, (b, k, p, n_steps))),
          'frame': jnp.asarray(frame), 'valid': jnp.asarray(entry_valid)}
  cfg = official_loss.LossConfig()
  ours, _ = train_loss.terms_of(model, outs, jnp.asarray(targets), jnp.asarray(valid), cfg)

  # The official layout: the N = 3 valid objects flattened, per frame the list of steps.
  obj = [(i, j) for i in range(b) for j in range(k) if valid[i, j]]
  high = np.asarray(tracking.high_res(model, jnp.asarray(low)))
  official_outputs = []
  for t in range(t_len):
    e = int(np.flatnonzero((frame == t) & entry_valid)[0])
    masks, iou_list, scores = [], [], []
    for st in range(n_steps):
      if not step_valid[e, st]:
        continue
      if e == 0:                       # the mask itself at +-10, M = 1
        m = np.stack([np.where(targets[i, j, t], 10.0, -10.0)[None] for i, j in obj])
      else:
        m = np.stack([high[i, j, e, st] for i, j in obj])
        m = m[:, :1] if single[e, st] else m
      m_iou = np.stack([ious[i, j, e, st] for i, j in obj])[:, :m.shape[1]]
      masks.append(jnp.asarray(m, jnp.float32))
      iou_list.append(jnp.asarray(m_iou))
      scores.append(jnp.asarray(np.stack([[score[i, j, e, st]] for i, j in obj])))
    official_outputs.append({official_loss.MASKS: masks, official_loss.IOUS: iou_list,
                             official_loss.OBJECT_SCORES: scores})
  official_targets = jnp.asarray(np.stack([[targets[i, j, t] for i, j in obj]
                                           for t in range(t_len)]).astype(np.float32))
  want = official_loss.multistep_loss(official_outputs, official_targets, cfg)
  for key in (*official_loss.TERMS, 'core_loss'):
    np.testing.assert_allclose(float(ours[key]), float(want[key]), rtol=2e-5, err_msg=key)
  assert float(want['loss_class']) > 0 and float(want['loss_iou']) > 0


# ---------------------------------------------------------------- the unroll against inference


@pytest.mark.slow
def test_unroll_tracks_as_the_inference_scan():
  """A mask prompt on frame 0, then tracking: the training unroll, with the memory kept as the
  inference predictor keeps it, gives the masks of the inference scan step (which is checked
  against the official predictor in test_sam2_parity.py). Fixture weights, 64 px, 2 objects."""
  from memvos_jax.data import sampling
  from memvos_jax.inference.core import FrameInput
  from memvos_jax.models.sam2 import unroll
  state_dict = official_state('sam2_random')
  t_len, k = 3, 2
  c = small_config(**{'training.num_frames': t_len, 'training.max_objects': k})
  model = FAMILY.build(**c.network.to_dict())
  variables = jax.tree.map(jnp.asarray, FAMILY.convert(state_dict, model))
  batch = sampling.make_dataset(c, 0, 1)[0][3]
  assert batch['valid'].all()
  settings = train_loss.unroll_settings(c)
  settings = unroll.UnrollSettings(prompts=settings.prompts, model=settings.model,
                                   inference_memory=True)
  n = settings.prompts.num_correction_pt_per_frame
  plan = prompts.Plan(use_points=jnp.asarray(False), init_frames=jnp.asarray([0, 1]),
                      init_valid=jnp.asarray([True, False]), box=jnp.zeros((2,), bool),
                      correct=jnp.zeros((t_len,), bool), from_gt=jnp.zeros((t_len, n), bool))
  labels = jnp.asarray(batch['labels'])
  targets = labels[:, None] == jnp.arange(1, k + 1)[None, :, None, None, None]
  keys = jax.random.split(jax.random.key(0), k).reshape(1, k)
  outs = jax.jit(lambda v: unroll.unroll(model, v, settings, plan, jnp.asarray(batch['frames']),
                                         targets, keys))(variables)
  high = np.asarray(tracking.high_res(model, outs['final'][0]))           # [K, P, S, S]
  frame, ok = np.asarray(outs['frame']), np.asarray(outs['valid'])
  step_settings = FAMILY.make_settings(capacity=1, chunk=1, return_probs=True)
  state = FAMILY.init_state(model, step_settings, k, (64, 64))
  step = jax.jit(lambda st, fr: FAMILY.step(model, variables, step_settings, st, fr))
  for t in range(t_len):
    given = np.full((k,), t == 0)
    fr = FrameInput(image=jnp.asarray(batch['frames'][0, t]),
                    annotation=labels[0, 0] if t == 0 else jnp.zeros_like(labels[0, 0]),
                    given=jnp.asarray(given), index=jnp.int32(t),
                    is_last=jnp.asarray(t == t_len - 1), valid=jnp.asarray(True),
                    num_frames=jnp.int32(t_len))
    state, out = step(state, fr)
    logits = high[:, int(np.flatnonzero((frame == t) & ok)[0])]              # [K, S, S]
    ours = np.where(logits.max(0) > 0, logits.argmax(0) + 1, 0)
    assert (ours == np.asarray(out.mask)).mean() >= 0.999, t
    if t:
      assert 0 < (ours > 0).sum() < ours.size                               # not trivial
    keep = logits.argmax(0)[None] == np.arange(k)[:, None, None]   # non-overlapping (official)
    fg = 1 / (1 + np.exp(-np.where(keep, logits, np.minimum(logits, -10.0))))
    close = np.abs(fg - np.asarray(out.probs[1:])) < 1e-3
    assert close.mean() >= 0.999, t


# ---------------------------------------------------------------- training runs

# One clip (a single synthetic video), point prompts (clicks or boxes, corrections) on every
# step, a larger learning rate: the run that train.py makes in the tests below.
RUN = {'data.synthetic_clips': 1, 'training.prob_to_use_pt_input': 1.0,
       'training.learning_rate': 3e-4, 'training.vision_lr': 3e-4, 'training.warmup_steps': 0}


def _train_py(workdir, *extra):
  args = [f'--config.{k}={v}' for k, v in {**SMALL, **RUN}.items()]
  cmd = [sys.executable, str(REPO / 'train.py'), '--config',
         str(REPO / 'configs/sam2.py:train_tiny'), f'--workdir={workdir}', *args, *extra]
  return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=REPO,
                        timeout=CHILD_TIMEOUT_S)


@pytest.fixture(scope='module')
def four_steps(tmp_path_factory):
  """``train.py --config configs/sam2.py:train_tiny`` for 4 steps: fine-tuning ../shared's
  random-initialised SAM 2.1-T written as an official ``.pt`` when ../shared is present
  (-> workdir, the run, the fixture's state_dict), from random weights when it is not
  (state_dict None). One run: it takes minutes to build on 2 cores, most of it the update's
  compile, which the persistent compilation cache does not shorten (loading this
  executable from it takes as long)."""
  workdir = tmp_path_factory.mktemp('sam2_run')
  state, extra = None, []
  if (SHARED / 'fixtures' / 'sam2_random' / 'recipe.json').is_file():
    import torch_files
    state = official_state('sam2_random')
    pt = tmp_path_factory.mktemp('official') / 'sam2.1_hiera_tiny.pt'
    torch_files.write_torch_zip(pt, state, wrap='model')
    extra = [f'--config.checkpoint={pt}']
  # Clips of 2 frames (prompted frame 0, then frame 1 prompted or tracked, corrected or
  # not): every prompt path of the unroll at the smallest compile (3 frames: ~10 s more).
  r = _train_py(workdir, *extra, '--config.training.num_frames=2',
                '--config.training.num_steps=4', '--config.training.log_every=1',
                '--config.training.checkpoint_every=4', '--config.training.eval_every=0')
  assert r.returncode == 0, r.stderr[-3000:]
  return workdir, r, state


@pytest.mark.slow
def test_train_py_writes_a_metrics_row_per_step_and_the_checkpoint(four_steps):
  workdir, r, _ = four_steps
  assert 'embedded synthetic videos' in r.stdout
  rows = metric_rows(workdir)
  assert sorted(rows) == [1, 2, 3, 4]
  assert all(np.isfinite(loss) for loss, _ in rows.values())
  assert (workdir / 'checkpoints' / '4').is_dir()
  assert os.path.isdir(checkpointing.variables_path(str(workdir), 4))


@pytest.mark.slow
def test_a_few_steps_on_one_clip_make_the_loss_fall(four_steps):
  import json
  rows = [json.loads(line) for line in open(four_steps[0] / 'metrics.jsonl')]
  rows = {r['step']: r for r in rows if 'loss' in r}
  assert all(rows[s]['points_input'] == 1.0 for s in rows)
  losses = [rows[s]['loss'] for s in sorted(rows)]
  # From the fixture: 9.9, 10.6, 7.4, 6.2. From random weights the first steps shrink
  # the huge logits (~900 -> ~10).
  assert losses[-1] < 0.75 * losses[0] and losses[-1] < min(losses[:2]), losses


@pytest.mark.slow
def test_finetuning_starts_from_the_official_checkpoint(four_steps):
  """``--config.checkpoint=<official .pt>``: after 4 AdamW steps of lr 3e-4 every weight is
  within 5e-3 of the converted fixture (random weights are not) and some moved."""
  workdir, _, state = four_steps
  if state is None:
    need_shared('fixtures', 'sam2_random', 'recipe.json')
  c = small_config()
  model = FAMILY.build(**c.network.to_dict())
  want = FAMILY.convert(state, model)['params']
  # The step-4 variables, read as eval.py reads a training checkpoint.
  with c.unlocked():
    c.checkpoint = checkpointing.variables_path(str(workdir), 4)
  got = FAMILY.load_variables(c, model)['params']
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), got, want))
  assert 0 < max(diffs) < 5e-3, max(diffs)
