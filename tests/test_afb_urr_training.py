"""AFB-URR training: the clip forward against the network's own methods step by step, the
loss, the official recipe's config, ImageNet trunks, and train.py end to end."""

import functools
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHILD_TIMEOUT_S, SHARED, child_env, REPO
from helpers import numpy_variables
from memvos_jax.configs import afb_urr as afb_config
from memvos_jax.convert import imagenet
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.data import sampling
from memvos_jax.errors import InputError
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.inference.core import normalize
from memvos_jax.models.afb_urr import FAMILY, checks, convert, loss, unroll
from memvos_jax.models.afb_urr.modeling import AFBURR
from memvos_jax.training import config_check
from memvos_jax.training import state as state_lib

pytestmark = pytest.mark.fast_compile   # ours against ours and a transcription

SMALL = dict(key_dim=8, value_dim=16, backbone='resnet18_w32', decoder_dims=(16, 8))
H, W = 48, 64


def _fill(name, shape, rng):
  if name == 'kernel':
    return rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[:-1])))
  if name in ('scale', 'var'):
    return np.ones(shape, np.float32)
  if name == 'bias':
    return (0.05 * rng.standard_normal(shape)).astype(np.float32)
  return np.zeros(shape, np.float32)


@functools.lru_cache(maxsize=None)
def _small_model():
  model = AFBURR(**SMALL)
  return model, numpy_variables(convert.abstract_variables(model), _fill)


def _blob_labels(t):
  """[t, H, W] slots: object 1 a moving rectangle (slot 2 never present)."""
  labels = np.zeros((t, H, W), np.uint8)
  for i in range(t):
    labels[i, 10 + 2 * i:30 + 2 * i, 12 + 3 * i:40 + 3 * i] = 1
  return labels


def small_config(**training):
  c = afb_config.get_config('tiny')
  with c.unlocked():
    for k, v in SMALL.items():
      c.network[k] = v
    c.training.crop_size = 32
    c.training.batch_size = 2
    c.training.warmup_steps = 0
    c.training.eval_every = 0
    c.training.progress = False
    c.data.threads = 0
    for k, v in training.items():
      c.training[k] = v
  return c


def _by_hand(model, variables, frames, labels):
  """The official training forward for obj_n = 2 (background + object 1), written out with
  the network's own methods: memorise frame 0 with its one-hot masks, then each later
  frame reads every class's frame-0 keys (softmax of k.q / sqrt(Ck)) and is decoded."""
  apply = functools.partial(model.apply, variables)
  masks = jnp.stack([labels[0] == 0, labels[0] == 1]).astype(jnp.float32)    # [2, H, W]
  mk, mv = apply(frames[0], masks, method='encode_memory')                    # [2, h, w, C]
  out = []
  for t in range(1, frames.shape[0]):
    k4, v4, r3, r2, r1 = apply(frames[t][None], method='encode_query')
    hk, wk, ck = k4.shape[1:]
    q = k4[0].reshape(hk * wk, ck)
    reads = []
    for c in range(2):
      keys = mk[c].reshape(-1, ck)
      w = jax.nn.softmax(q @ keys.T / np.sqrt(ck), axis=1)                   # [Q, M]
      reads.append((w @ mv[c].reshape(keys.shape[0], -1)).reshape(hk, wk, -1))
    out.append(apply(jnp.stack(reads), v4[0], r3, r2, r1, method='decode'))   # [2, H, W]
  return jnp.stack(out)                                                       # [T-1, 2, H, W]


@pytest.mark.slow   # three compiled forwards: ~15 s on 2 cores (~30 s when busy)
def test_clip_forward_equals_the_network_step_by_step():
  """3-frame clip, K = 2 slots of which the second is empty: the unroll (scan and Python
  loop) gives the hand-written official forward over the existing classes."""
  model, variables = _small_model()
  rng = np.random.default_rng(3)
  frames = normalize(jnp.asarray(rng.integers(0, 255, (3, H, W, 3), dtype=np.uint8)))
  labels = jnp.asarray(_blob_labels(3), jnp.int32)
  valid = jnp.array([True, False])
  want = np.asarray(jax.jit(functools.partial(_by_hand, model, variables))(frames, labels))
  run = jax.jit(functools.partial(unroll.clip_probs, model, variables), static_argnums=3)
  for use_scan in (False, True):
    probs, class_valid = run(frames, labels, valid, use_scan)
    assert probs.shape == (2, 3, H, W)
    assert class_valid.tolist() == [True, True, False]
    np.testing.assert_allclose(np.asarray(probs[:, :2]), want, rtol=1e-4, atol=2e-5)

  # Frames 1 and 2 read frame 0 alone: changing frame 2 leaves frame 1's prediction.
  moved = run(frames.at[2].set(0.0), labels, valid, True)[0]
  np.testing.assert_allclose(np.asarray(moved[0]), np.asarray(probs[0]), rtol=1e-5, atol=1e-6)
  assert not np.allclose(np.asarray(moved[1]), np.asarray(probs[1]))


def test_batch_loss_is_the_official_loss_of_the_existing_classes():
  """Clip 0 has object 1 of K = 2 slots, clip 1 none: the batch loss is the official loss
  (``loss.loss``, parity-tested) of clip 0's background and object 1; per-frame terms
  average to it; the empty clip weighs nothing (the official loop skips it), its
  gradient included."""
  rng = np.random.default_rng(0)
  probs = jnp.asarray(rng.random((2, 2, 3, 8, 8)), jnp.float32)          # [B, T-1, O, H, W]
  labels = jnp.asarray(rng.integers(0, 2, (2, 3, 8, 8)))
  valid = jnp.array([[True, False], [False, False]])
  class_valid = jnp.concatenate([jnp.ones((2, 1), bool), valid], axis=1)
  batch_loss = jax.jit(loss.batch_loss)
  total, m = batch_loss(probs, class_valid, labels, valid, 0.5)
  ref_total, ref = loss.loss(probs[0, :, :2], labels[0, 1:], 0.5)
  np.testing.assert_allclose(float(total), float(ref_total), rtol=1e-6)
  np.testing.assert_allclose(float(m['ce']), float(ref['ce']), rtol=1e-6)
  np.testing.assert_allclose(float(m['uncertainty']), float(ref['uncertainty']), rtol=1e-6)
  per = [float(loss.loss(probs[0, i:i + 1, :2], labels[0, 1 + i:2 + i])[0]) for i in range(2)]
  np.testing.assert_allclose([float(m['loss_1']), float(m['loss_2'])], per, rtol=1e-6)
  assert float(batch_loss(probs, class_valid, labels, valid & False, 0.5)[0]) == 0.0
  # The empty clip has one class, so no uncertainty (norm 0): its gradient is 0, not NaN
  # (a NaN there reached every weight through the weight-0 clip).
  g = jax.grad(lambda p: batch_loss(p, class_valid, labels, valid, 0.5)[0])(probs)
  assert np.all(np.isfinite(g)) and not np.any(g[1]) and np.any(g[0])


def test_config_is_the_official_recipe():
  c = afb_config.get_config()
  t = c.training
  assert (t.batch_size, t.num_frames, t.max_objects, t.crop_size) == (1, 6, 2, 400)
  assert (t.optimizer, t.learning_rate, t.weight_decay, t.lr_gamma, t.lu) == (
      'adamw', 1e-5, 0.01, 0.5, 0.5)
  assert t.frame_sampling == 'shuffle' and tuple(c.data.crop_scale) == (0.8, 1.0)
  assert t.num_steps == 6000 and tuple(t.lr_steps) == (1500, 3000, 4500)   # 100 / 25 epochs
  d = afb_config.get_config('davis').training
  assert d.learning_rate == 4e-6 and d.num_steps == 60_000 and d.lr_steps[:2] == (12_000, 24_000)
  assert dict(c.network) == dict(key_dim=128, value_dim=512, backbone='resnet50',
                                 decoder_dims=(256, 32))
  config_check.check(c, 1, encoders=AFBURR.encoders, family=FAMILY)
  bad = afb_config.get_config('tiny')
  with bad.unlocked():
    bad.network.backbone = 'vgg16'
  with pytest.raises(InputError, match=r'config\.network\.backbone'):
    checks.check_config(bad)
  with bad.unlocked():
    bad.network.backbone, bad.training.lu = 'resnet18', -1.0
  with pytest.raises(InputError, match=r'config\.training\.lu'):
    checks.check_config(bad)


def test_shuffled_frames_and_adamw():
  """Official frame choice: distinct frames of the whole video in random order; AdamW as
  torch: p - lr * (m / (sqrt(v) + eps) + wd * p)."""
  rng = np.random.default_rng(0)
  picks = [sampling.shuffled_frames(rng, 50, 6) for _ in range(200)]
  assert all(len(set(p)) == 6 for p in picks)
  assert any(p != sorted(p) for p in picks) and max(max(p) for p in picks) >= 45
  assert len(sampling.shuffled_frames(rng, 2, 6)) == 6
  c = afb_config.get_config()
  opt = state_lib.make_optimizer(c)
  p, g = {'w': jnp.array([1.0, -2.0])}, {'w': jnp.array([0.5, 0.25])}
  upd, _ = opt.update(g, opt.init(p), p)
  want = -1e-5 * (g['w'] / (jnp.abs(g['w']) + 1e-8) + 0.01 * p['w'])
  np.testing.assert_allclose(upd['w'], want, rtol=1e-5)


def _torchvision_resnet50():
  from test_backbones import _torchvision_resnet50 as make
  return make()


def test_backbone_init_fills_both_resnet50_trunks(tmp_path):
  """``--config.training.backbone_init=FILE`` (torchvision ResNet-50) fills the query and
  memory encoders' trunks strictly; the memory encoder's mask convolutions keep theirs."""
  sd = _torchvision_resnet50()
  path = tmp_path / 'resnet50.npz'
  np.savez(path, **sd)
  c = afb_config.get_config()
  with c.unlocked():
    c.training.backbone_init = str(path)
  model = FAMILY.build(**c.network.to_dict())
  variables = numpy_variables(convert.abstract_variables(model), _fill)
  loaded, lines = imagenet.apply_backbone_init(c, model, variables)
  assert len(lines) == 2
  for enc in ('encoder_q', 'encoder_m'):
    np.testing.assert_array_equal(loaded['params'][enc]['conv1']['kernel'],
                                  sd['conv1.weight'].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(loaded['batch_stats'][enc]['layer3_5']['bn3']['var'],
                                  sd['layer3.5.bn3.running_var'])
  for conv in ('conv1_m', 'conv1_o'):
    np.testing.assert_array_equal(loaded['params']['encoder_m'][conv]['kernel'],
                                  variables['params']['encoder_m'][conv]['kernel'])
  np.testing.assert_array_equal(loaded['params']['decoder']['pred2']['kernel'],
                                variables['params']['decoder']['pred2']['kernel'])


MOBILENET = SHARED / 'weights' / 'imagenet' / 'mobilenet_v2-b0353104.pth'


@pytest.mark.skipif(not MOBILENET.is_file(), reason='needs ../shared/weights/imagenet')
def test_small_variant_starts_both_mobilenet_trunks_from_imagenet():
  """``:small``: both encoders are the shared MobileNetV2 (the query one also gives the
  stride-2 skip the URR decoder refines with); ImageNet weights fill both, and the memory
  trunk's stem keeps its fresh mask channels."""
  c = afb_config.get_config('small')
  with c.unlocked():
    c.training.backbone_init = str(MOBILENET)
  model = FAMILY.build(**c.network.to_dict())
  checks.check_config(c)
  seg = ClipSegmenter(FAMILY, model, None, **c.inference.to_dict())   # validation's options
  assert seg.dtype == 'float32' and seg.size == 240
  variables = numpy_variables(convert.abstract_variables(model), _fill)
  loaded, lines = imagenet.apply_backbone_init(c, model, variables)
  assert len(lines) == 2
  stem = load_state_dict(str(MOBILENET))['features.0.0.weight'].transpose(2, 3, 1, 0)
  np.testing.assert_array_equal(loaded['params']['encoder_q']['features_0_0']['kernel'], stem)
  mem = loaded['params']['encoder_m']['features_0_0']['kernel']            # [3, 3, 5, 32]
  np.testing.assert_array_equal(mem[:, :, :3], stem)
  np.testing.assert_array_equal(
      mem[:, :, 3:], variables['params']['encoder_m']['features_0_0']['kernel'][:, :, 3:])
  k4, v4, r3, r2, r1 = jax.eval_shape(
      functools.partial(model.apply, loaded, method='encode_query'),
      jax.ShapeDtypeStruct((1, 64, 96, 3), jnp.float32))
  assert (k4.shape, r3.shape, r2.shape, r1.shape) == (
      (1, 4, 6, 64), (1, 8, 12, 32), (1, 16, 24, 24), (1, 32, 48, 16))


@pytest.mark.slow   # a train.py process: ~35 s on 2 cores
def test_train_py_on_a_still_clip_writes_metrics_checkpoint_and_the_loss_falls(tmp_path):
  """``train.py --config configs/afb_urr.py:tiny`` on one still clip (one synthetic video,
  frame skip 0) for 10 steps: a metrics row per step, the checkpoint, and the loss falls."""
  work = tmp_path / 'run'
  args = ['--config.network.key_dim=8', '--config.network.value_dim=16',
          '--config.network.decoder_dims=(16,8)', '--config.training.crop_size=32',
          '--config.training.batch_size=2', '--config.training.num_steps=10',
          '--config.training.log_every=1', '--config.training.checkpoint_every=10',
          '--config.training.eval_every=0', '--config.training.progress=False',
          '--config.data.synthetic_clips=1', '--config.training.max_skip_values=(0,0,0,0,0,0)',
          '--config.training.learning_rate=3e-4', '--config.training.warmup_steps=0',
          '--config.data.threads=0', '--config.training.init_rng=rbg']   # one init program
  r = subprocess.run([sys.executable, str(REPO / 'train.py'), '--config',
                      str(REPO / 'configs/afb_urr.py:tiny'), f'--workdir={work}', *args],
                     capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                     env=child_env())
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'model: AFBURR' in r.stdout and 'embedded synthetic videos' in r.stdout, r.stdout
  rows = [json.loads(line) for line in open(work / 'metrics.jsonl')]
  rows = {row['step']: row for row in rows if 'loss' in row}
  assert sorted(rows) == list(range(1, 11))
  for row in rows.values():
    assert {'loss', 'ce', 'uncertainty', 'iou', 'loss_1', 'loss_2', 'lr'} <= set(row)
    assert np.isfinite(row['loss'])
  assert (work / 'checkpoints' / '10').is_dir()
  summary = json.loads((work / 'summary.json').read_text())
  assert summary['steps'] == 10 and summary['checkpoint'].endswith('/10')
  losses = [rows[s]['loss'] for s in sorted(rows)]
  print('losses', [round(v, 4) for v in losses])
  assert max(losses[-3:]) < 0.7 * losses[0], losses
