"""STM training: the clip unroll against a hand-written loop, train.py end to end, the loss
falls on a still clip, ImageNet trunks, config checks (STM's trainer on the shared engine)."""

import functools
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.configs import stm as stm_config
from memvos_jax.convert import imagenet
from memvos_jax.data import sampling
from memvos_jax.errors import InputError
from memvos_jax.inference.core import normalize
from memvos_jax.models.stm import FAMILY, bn_init, unroll
from memvos_jax.models.stm.modeling import STM
from memvos_jax.nn.aggregate import aggregate
from memvos_jax.registry import build_model
from memvos_jax.training import config_check

from conftest import CHILD_TIMEOUT_S, child_env, REPO, SHARED
from helpers import lecun_fill, numpy_variables

pytestmark = pytest.mark.fast_compile   # ours against ours and the paper formula

SMALL = dict(backbone='resnet18', key_dim=16, value_dim=32, decoder_dim=16)
S, K = 32, 2


def small_config(**training):
  c = stm_config.get_config('tiny')
  with c.unlocked():
    for key, value in SMALL.items():
      c.network[key] = value
    c.training.crop_size = S
    c.training.batch_size = 1
    c.training.num_steps = 20
    c.training.warmup_steps = 0
    c.training.eval_every = 0
    c.training.progress = False
    c.data.threads = 0
    for key, value in training.items():
      c.training[key] = value
  return c


@functools.cache
def small_model():
  model = STM(**SMALL)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, S, S, 3)),
                          jnp.zeros((K, S, S)))
  return model, numpy_variables(shapes, lecun_fill)


def reference_logits(model, variables, frames, labels, valid):
  """The paper's training clip written out frame by frame with the network's own methods:
  frame 0 memorised from its ground truth, frame t reads frames 0..t-1 (their keys and
  values concatenated), frames 1..T-2 memorised from their soft-aggregated probabilities."""
  apply = functools.partial(model.apply, variables)
  k = valid.shape[0]
  gt0 = ((labels[0][None] == jnp.arange(1, k + 1)[:, None, None])
         & valid[:, None, None]).astype(jnp.float32)
  mk, mv = apply(frames[0], gt0, method='encode_memory')
  keys, values, out = [mk], [mv], []
  for t in range(1, frames.shape[0]):
    qk, qv, r3, r2 = apply(frames[t:t + 1], method='encode_query')
    ck = qk.shape[-1]
    mem_k = jnp.concatenate([x.reshape(k, -1, ck) for x in keys], axis=1)      # [K, t*N, Ck]
    mem_v = jnp.concatenate([x.reshape(k, -1, x.shape[-1]) for x in values], axis=1)
    aff = jnp.einsum('kmc,qc->kqm', mem_k, qk[0].reshape(-1, ck)) / math.sqrt(ck)
    read = jnp.einsum('kqm,kmc->kqc', jax.nn.softmax(aff, axis=-1), mem_v)
    logits = apply(read.reshape((k,) + qv.shape[1:3] + (-1,)), qv[0], r3, r2,
                   method='decode')                                            # [K, H, W, 2]
    out.append(logits)
    if t < frames.shape[0] - 1:
      probs = aggregate(jax.nn.softmax(logits, axis=-1)[..., 1], valid)       # [K+1, H, W]
      mk, mv = apply(frames[t], probs[1:], method='encode_memory')
      keys.append(mk)
      values.append(mv)
  return jnp.stack(out)


def test_unroll_equals_a_frame_by_frame_loop():
  """T = 3: frame 1 reads frame 0, frame 2 reads frames 0 and 1; scan = Python loop."""
  model, variables = small_model()
  rng = np.random.default_rng(3)
  frames = normalize(jnp.asarray(rng.integers(0, 255, (3, S, S, 3), dtype=np.uint8)))
  labels = np.zeros((3, S, S), np.int32)
  labels[:, 4:20, 6:22] = 1
  labels[:, 18:30, 14:28] = 2
  run = jax.jit(functools.partial(unroll.clip_logits, model, variables), static_argnums=3)
  ref = jax.jit(functools.partial(reference_logits, model, variables))
  for valid in ([True, True], [True, False]):
    valid = jnp.asarray(valid)
    lab = jnp.asarray(np.where(labels <= int(valid.sum()), labels, 0))
    want = np.asarray(ref(frames, lab, valid))
    assert want.shape == (2, K, S, S, 2)
    for use_scan in (True, False):
      got = np.asarray(run(frames, lab, valid, use_scan))
      assert got.shape == want.shape and got.dtype == np.float32
      scale = float(np.max(np.abs(want)))
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale,
                                 err_msg=f'valid {valid}, scan {use_scan}')


@pytest.mark.slow   # a child process (init, BatchNorm from data, one compile): ~35 s
def test_train_py_on_a_still_clip_writes_metrics_checkpoint_and_the_loss_falls(tmp_path):
  """``train.py --config configs/stm.py:tiny`` on one still clip (one synthetic video, frame
  skip 0) for 10 steps: a metrics row per step, the checkpoint, and the loss falls."""
  work = tmp_path / 'w'
  r = subprocess.run(
      [sys.executable, str(REPO / 'train.py'), '--config', f'{REPO}/configs/stm.py:tiny',
       f'--workdir={work}', '--config.training.num_steps=10', '--config.training.log_every=1',
       '--config.training.checkpoint_every=10', '--config.training.eval_every=0',
       f'--config.training.crop_size={S}', '--config.training.batch_size=2',
       *[f'--config.network.{k}={v}' for k, v in SMALL.items()],
       '--config.data.synthetic_clips=1', '--config.training.max_skip_values=(0,)',
       '--config.training.max_skip_boundaries=()', '--config.training.learning_rate=1e-4',
       '--config.training.warmup_steps=0', '--config.training.init_rng=rbg',
       '--config.data.threads=0', '--config.training.progress=False'],
      capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S, env=child_env())
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'model: STM' in r.stdout, r.stdout
  rows = [json.loads(line) for line in open(work / 'metrics.jsonl')]
  rows = [row for row in rows if 'loss' in row]
  assert [row['step'] for row in rows] == list(range(1, 11))
  for row in rows:
    for key in ('loss', 'iou', 'loss_1', 'loss_2', 'grad_norm'):
      assert np.isfinite(row[key]), row
    assert row['loss'] == pytest.approx(row['loss_1'] + row['loss_2'], rel=1e-5)
    assert len(row['indices']) == 2
  assert (work / 'checkpoints' / '10').is_dir()
  assert json.loads((work / 'summary.json').read_text())['steps'] == 10
  losses = [row['loss'] for row in rows]
  print('losses', [round(x, 4) for x in losses])
  assert max(losses[-3:]) < 0.6 * losses[0], losses


def test_batchnorm_statistics_from_a_batch():
  """``bn_init.calibrate``: every BatchNorm of both trunks gets its input's moments."""
  c = small_config(batch_size=2)
  model, variables = small_model()
  batch = sampling.make_dataset(c, 0, 1)[0][0]
  out = bn_init.calibrate(model, variables, batch, passes=1)
  for trunk in ('query_encoder', 'memory_encoder'):
    for bn in ('bn1', 'layer1_0/bn1', 'layer3_1/bn2', 'layer2_0/downsample_1'):
      node = out['batch_stats'][trunk]
      for p in bn.split('/'):
        node = node[p]
      assert not np.allclose(node['var'], 1.0), (trunk, bn)
  # Stem statistics after one pass: the stem conv's output moments on the data.
  frames = normalize(jnp.asarray(batch['frames']))
  images = frames.reshape((-1,) + frames.shape[2:])
  kernel = variables['params']['query_encoder']['conv1']['kernel']
  x = jax.lax.conv_general_dilated(images, kernel, (2, 2), ((3, 3), (3, 3)),
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(out['batch_stats']['query_encoder']['bn1']['mean'],
                             np.mean(x, (0, 1, 2)), rtol=1e-4, atol=1e-5)


def _torchvision_resnet18():
  """torchvision ``resnet18().state_dict()`` names and shapes, from the architecture."""
  rng = np.random.default_rng(0)
  sd = {}

  def conv(name, o, i, k):
    sd[f'{name}.weight'] = rng.normal(0, 0.05, (o, i, k, k)).astype(np.float32)

  def bn(name, c):
    for field, value in (('weight', rng.uniform(0.5, 1.5, c)), ('bias', rng.normal(0, .1, c)),
                         ('running_mean', rng.normal(0, .1, c)),
                         ('running_var', rng.uniform(0.5, 1.5, c))):
      sd[f'{name}.{field}'] = value.astype(np.float32)
    sd[f'{name}.num_batches_tracked'] = np.array(0, np.int64)

  conv('conv1', 64, 3, 7)
  bn('bn1', 64)
  cin = 64
  for layer, planes in enumerate((64, 128, 256, 512), 1):
    for b in range(2):
      p = f'layer{layer}.{b}'
      conv(f'{p}.conv1', planes, cin, 3)
      bn(f'{p}.bn1', planes)
      conv(f'{p}.conv2', planes, planes, 3)
      bn(f'{p}.bn2', planes)
      if b == 0 and layer > 1:
        conv(f'{p}.downsample.0', planes, cin, 1)
        bn(f'{p}.downsample.1', planes)
      cin = planes
  sd['fc.weight'] = rng.normal(0, 0.01, (1000, 512)).astype(np.float32)
  sd['fc.bias'] = np.zeros(1000, np.float32)
  return sd


def _variables(backbone):
  model = STM(backbone=backbone, key_dim=16, value_dim=32, decoder_dim=16)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, S, S, 3)),
                          jnp.zeros((K, S, S)))
  return model, numpy_variables(shapes, lecun_fill)


def _backbone_config(backbone, spec):
  c = small_config()
  with c.unlocked():
    c.network.backbone = backbone
    c.training.backbone_init = spec
  return c


def test_backbone_init_resnet18_query_and_memory(tmp_path):
  """``training.backbone_init`` fills STM's trunks (``STM.encoders``); the memory trunk's
  stem keeps its own filters for the mask channels; ``query=FILE`` leaves the memory trunk."""
  sd = _torchvision_resnet18()
  path = tmp_path / 'resnet18.npz'
  np.savez(path, **sd)
  model, variables = _variables('resnet18')
  out, lines = imagenet.apply_backbone_init(_backbone_config('resnet18', str(path)), model,
                                            variables)
  assert len(lines) == 2 and 'query encoder (resnet18)' in lines[0]
  stem = sd['conv1.weight'].transpose(2, 3, 1, 0)                        # [7, 7, 3, 64]
  np.testing.assert_array_equal(out['params']['query_encoder']['conv1']['kernel'], stem)
  mem = out['params']['memory_encoder']['conv1']['kernel']               # [7, 7, 5, 64]
  np.testing.assert_array_equal(mem[:, :, :3], stem)
  np.testing.assert_array_equal(mem[:, :, 3:],
                                variables['params']['memory_encoder']['conv1']['kernel'][:, :, 3:])
  for trunk in ('query_encoder', 'memory_encoder'):
    np.testing.assert_array_equal(out['batch_stats'][trunk]['layer3_1']['bn2']['var'],
                                  sd['layer3.1.bn2.running_var'])
  np.testing.assert_array_equal(out['params']['query_kv']['Key']['kernel'],
                                variables['params']['query_kv']['Key']['kernel'])
  out, lines = imagenet.apply_backbone_init(
      _backbone_config('resnet18', f'query={path}'), model, variables)
  assert len(lines) == 1
  np.testing.assert_array_equal(out['params']['memory_encoder']['conv1']['kernel'],
                                variables['params']['memory_encoder']['conv1']['kernel'])


def test_backbone_init_mobilenet_v2():
  path = SHARED / 'weights' / 'imagenet' / 'mobilenet_v2-b0353104.pth'
  if not path.exists():
    pytest.skip(f'needs {path}')
  model, variables = _variables('mobilenet_v2')
  out, lines = imagenet.apply_backbone_init(_backbone_config('mobilenet_v2', str(path)),
                                            model, variables)
  assert len(lines) == 2
  q = out['params']['query_encoder']['features_0_0']['kernel']            # [3, 3, 3, 32]
  m = out['params']['memory_encoder']['features_0_0']['kernel']           # [3, 3, 5, 32]
  np.testing.assert_array_equal(m[:, :, :3], q)
  assert not np.array_equal(q, variables['params']['query_encoder']['features_0_0']['kernel'])


def test_config_variants_and_checks(tmp_path):
  for arg in ('stage3', 'stage0', 'runlocal', 'tiny', 'small'):
    c = stm_config.get_config(arg)
    if arg == 'small':                     # pastes objects cut from DAVIS clips
      with c.unlocked():
        c.data.davis_root = str(tmp_path)
    config_check.check(c, 1, encoders=STM.encoders, family=FAMILY)
  small = stm_config.get_config('small')   # the default model's recipe on STM
  assert small.network.backbone == 'mobilenet_v2' and small.data.heldout
  frozen = re.compile(small.training.freeze)
  assert frozen.match('query_encoder/features_6/conv_0_0/') and frozen.match(
      'memory_encoder/features_1/conv_0_0/')
  assert not frozen.match('memory_encoder/features_0_0/')   # the stem takes the masks
  assert not frozen.match('query_encoder/features_16/conv_0_0/')
  default, stage0 = stm_config.get_config(), stm_config.get_config('stage0')
  assert default.training.stage == 3 and stage0.training.stage == 0
  assert default.training.learning_rate == 1e-5 and tuple(default.training.lr_steps) == ()
  assert default.training.crop_size == 384 and default.training.num_frames == 3
  assert default.network.backbone == 'resnet50'
  bad = small_config()
  with bad.unlocked():
    bad.network.backbone = 'resnet5'
  with pytest.raises(InputError, match='network.backbone'):
    config_check.check(bad, 1, family=FAMILY)
  bad = small_config()
  with bad.unlocked():
    bad.network.decoder_dim = 0
  with pytest.raises(InputError, match='network.decoder_dim'):
    config_check.check(bad, 1, family=FAMILY)
  assert FAMILY.trainer is not None and build_model(small_config()).backbone == 'resnet18'
