"""Training losses against the official loss code (recorded fixtures) and STM's formula.

``tests/fixtures/loss/*.npz`` were written by ``benchmarks/record_loss_fixtures.py``
from the unedited official loss code (STCN ``model/losses.py`` ``LossComputer``,
AFB-URR ``train.py`` ``train_model``, SAM 2 ``training/loss_fns.py``
``MultiStepMultiMasksAndIous``) on one random float32 batch: the inputs, each
loss term, the total and torch's gradient of the total with respect to the
network outputs. Ours must give the same within float32 tolerance. STM has no
official training code: its loss is checked against a numpy (float64)
transcription of the paper's soft-aggregation cross-entropy written here.
Needs neither torch nor ../shared.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.models.afb_urr import loss as afb_loss
from memvos_jax.models.sam2 import loss as sam2_loss
from memvos_jax.models.stcn import loss as stcn_loss
from memvos_jax.models.stm import loss as stm_loss

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'loss'
RTOL = 1e-5


def load(name):
  with np.load(FIXTURES / f'{name}.npz') as z:
    return {k: z[k] for k in z.files}


def assert_close(ours, ref, what, rtol=RTOL, atol_scale=1e-6):
  """|ours - ref| <= atol + rtol |ref|, atol = atol_scale * max|ref| (float32 noise of the largest entry)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
  atol = atol_scale * max(float(np.max(np.abs(ref))), 1e-30)
  err = np.abs(ours - ref)
  bad = err > atol + rtol * np.abs(ref)
  assert not bad.any(), (f'{what}: {int(bad.sum())} of {bad.size} differ; max abs {err.max():.3g}, '
                         f'max rel {np.max(err / np.maximum(np.abs(ref), 1e-30)):.3g}')


# ---------------------------------------------------------------- STCN


@pytest.fixture(scope='module')
def stcn():
  return load('stcn')


def stcn_inputs(z):
  """The official logits with the absent objects' channels at -1e4, as ``unroll.aggregate_logits``.

  The official ``LossComputer`` drops channel 2 of a sample whose ``selector``
  says it has no second object (``logits[:, :2]``); ours keeps every channel
  and gives an invalid one log-odds -1e4 (softmax weight exactly 0).
  """
  keep = np.concatenate([np.ones((z['selector'].shape[0], 1)), z['selector']], 1) > 0.5
  return jnp.where(jnp.asarray(keep)[:, None, :, None, None], jnp.asarray(z['logits']), -1e4)


def test_stcn_fixture_covers_the_schedule(stcn):
  its, start, end = stcn['its'], int(stcn['start_warm']), int(stcn['end_warm'])
  assert (its < start).any() and (its > end).any() and ((its > start) & (its < end)).any()
  assert (start, end, float(stcn['top_p'])) == (20000, 70000, 0.15)   # official BootstrappedCE()
  assert (stcn['selector'][:, 1] == 0).any() and (stcn['selector'][:, 1] == 1).any()


@pytest.mark.parametrize('it', [10000, 20000, 45000, 70000, 80000])
def test_stcn_bootstrapped_ce_matches_official(stcn, it):
  z, pre = stcn, f'it{it}_'
  p = stcn_loss.bootstrap_p(it, int(z['start_warm']), int(z['end_warm']), float(z['top_p']))
  assert float(p) == pytest.approx(float(z[pre + 'p']), rel=1e-6)
  labels = jnp.asarray(z['cls_gt'], jnp.int32)                      # [B, 3, H, W]
  logits = stcn_inputs(z)                                           # [B, 2, 3, H, W]
  (total, per_frame), grad = jax.value_and_grad(
      lambda l: stcn_loss.clip_loss(l, labels, p), has_aux=True)(logits)
  assert_close(total, z[pre + 'total_loss'], f'{pre}total_loss')
  for i in range(per_frame.shape[0]):
    assert_close(per_frame[i], z[pre + f'loss_{i + 1}'], f'{pre}loss_{i + 1}')
  assert_close(grad, z[pre + 'grad_logits'], f'{pre}grad_logits')
  # The absent object's channel gets no gradient (the official loss never sees it).
  assert not np.asarray(grad)[z['selector'][:, 1] == 0][:, :, 2].any()


# ---------------------------------------------------------------- AFB-URR


def test_afb_urr_loss_matches_official():
  z = load('afb_urr')
  assert float(z['lu']) == afb_loss.LU
  fg = jnp.asarray(z['fg_probs'])                                   # [T-1, O, H, W]
  labels = jnp.asarray(z['labels'][1:], jnp.int32)                  # frames 1..T-1
  (total, terms), grad = jax.value_and_grad(afb_loss.loss, has_aux=True)(fg, labels)
  assert_close(terms['ce'], z['ce'], 'ce')
  assert_close(terms['uncertainty'], z['uncertainty'], 'uncertainty')
  assert_close(total, z['total'], 'total')
  assert_close(grad, z['grad_fg_probs'], 'grad_fg_probs')


# ---------------------------------------------------------------- SAM 2


def sam2_outputs(z):
  outs = []
  for f, n_steps in enumerate(z['steps']):
    outs.append({field: [jnp.asarray(z[f'{key}_f{f}_s{s}']) for s in range(int(n_steps))]
                 for key, field in (('masks', sam2_loss.MASKS), ('ious', sam2_loss.IOUS),
                                    ('obj', sam2_loss.OBJECT_SCORES))})
  return outs


@pytest.mark.parametrize('variant, config', [('train', sam2_loss.LossConfig()),
                                             ('default', sam2_loss.CLASS_DEFAULTS)])
def test_sam2_loss_matches_official(variant, config):
  z = load('sam2')
  recorded = eval(str(z[f'{variant}_config']))                     # the official settings
  assert recorded['weight_dict'] == config.weights()
  for key in ('focal_alpha', 'focal_gamma', 'supervise_all_iou', 'iou_use_l1_loss',
              'pred_obj_scores', 'focal_alpha_obj_score', 'focal_gamma_obj_score'):
    assert recorded[key] == getattr(config, key), key
  targets = jnp.asarray(z['targets'])                               # [T, N, H, W]
  assert not bool(targets[1, 2].any())                              # an absent object
  value_and_grad = jax.jit(jax.value_and_grad(sam2_loss.loss, has_aux=True), static_argnums=2)
  (total, terms), grads = value_and_grad(sam2_outputs(z), targets, config)
  for key in sam2_loss.TERMS:
    assert_close(terms[key], z[f'{variant}_{key}'], f'{variant} {key}')
  assert_close(total, z[f'{variant}_core_loss'], f'{variant} core_loss')
  for f, out in enumerate(grads):
    for key, field in (('masks', sam2_loss.MASKS), ('ious', sam2_loss.IOUS),
                       ('obj', sam2_loss.OBJECT_SCORES)):
      for s, g in enumerate(out[field]):
        assert_close(g, z[f'{variant}_grad_{key}_f{f}_s{s}'], f'{variant} grad {key}_f{f}_s{s}')


# ---------------------------------------------------------------- STM (no official training code)


def stm_formula(fg_logits, labels, valid):
  """The paper's loss, float64: per frame -mean log P(label), P the soft aggregation of the objects.

  fg_logits [B, T-1, K, H, W, 2], labels [B, T, H, W], valid [B, K] -> per-frame losses [T-1].
  """
  b, t1 = fg_logits.shape[:2]
  per = np.zeros((b, t1))
  for i in range(b):
    objs = np.nonzero(valid[i])[0]
    for j in range(t1):
      z = fg_logits[i, j, objs].astype(np.float64)
      p = np.exp(z[..., 1]) / (np.exp(z[..., 0]) + np.exp(z[..., 1]))      # [k, H, W]
      em = np.clip(np.concatenate([np.prod(1 - p, 0)[None], p]), 1e-7, 1 - 1e-7)
      odds = em / (1 - em)
      prob = odds / odds.sum(0)                                           # softmax of log-odds
      lab = labels[i, j + 1]                                              # 0 or a valid slot
      idx = np.searchsorted(np.concatenate([[0], objs + 1]), lab)         # slot -> channel
      per[i, j] = -np.mean(np.log(np.take_along_axis(prob, idx[None], 0)))
  return per.mean(0)


def stm_batch(scale, bias, dtype):
  """fg logits [B, T-1, K, H, W, 2] (a noisy guess of the labels), labels [B, T, H, W], valid [B, K]."""
  rng = np.random.default_rng(7)
  b, t, k, h, w = 2, 3, 3, 16, 16
  valid = np.array([[True, True, True], [True, False, True]])
  labels = rng.integers(0, k + 1, (b, t, h, w))
  labels[1][labels[1] == 2] = 0                                       # slot 2 absent in sample 1
  hit = labels[:, 1:, None] == np.arange(1, k + 1)[:, None, None]     # [B, T-1, K, H, W]
  fg = rng.normal(0, scale, hit.shape + (2,)) + bias * hit[..., None] * np.array([-1.0, 1.0])
  return fg.astype(dtype), labels, valid


def test_stm_loss_is_the_paper_formula():
  """float64 throughout: confident logits (some probabilities past the 1e-7 clamp), value and gradient."""
  with jax.enable_x64(True):
    fg, labels, valid = stm_batch(4.0, 6.0, np.float64)
    want = stm_formula(fg, labels, valid)
    args = (jnp.asarray(labels, jnp.int32), jnp.asarray(valid))
    total, per_frame = stm_loss.clip_loss(jnp.asarray(fg), *args)
    assert per_frame.dtype == jnp.float64
    assert_close(per_frame, want, 'stm per-frame loss', rtol=1e-12, atol_scale=1e-13)
    assert_close(total, want.sum(), 'stm total', rtol=1e-12, atol_scale=1e-13)
    # Gradient: central differences of the formula at a few entries.
    grad = np.asarray(jax.grad(lambda x: stm_loss.clip_loss(x, *args)[0])(jnp.asarray(fg)))
  assert not grad[1, :, 1].any()                                      # the invalid slot
  rng = np.random.default_rng(8)
  eps = 1e-5
  for flat in rng.choice(fg.size, 16, replace=False):
    idx = np.unravel_index(flat, fg.shape)
    up, down = fg.copy(), fg.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric = (stm_formula(up, labels, valid).sum() - stm_formula(down, labels, valid).sum()) / (2 * eps)
    assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9), idx


def test_stm_loss_float32():
  """float32 (as in training) on moderately confident logits: the formula within float32 noise."""
  fg, labels, valid = stm_batch(1.5, 2.0, np.float32)
  want = stm_formula(fg, labels, valid)
  total, per_frame = stm_loss.clip_loss(jnp.asarray(fg), jnp.asarray(labels, jnp.int32),
                                        jnp.asarray(valid))
  assert per_frame.dtype == jnp.float32
  assert_close(per_frame, want, 'stm per-frame loss')
  assert_close(total, want.sum(), 'stm total')
