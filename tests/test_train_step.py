"""Training step: loss, scan = Python unroll, loss falls on a fixed batch, writers, config errors."""

import dataclasses
import functools
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memvos_jax.configs import stcn
from memvos_jax.data import sampling
from memvos_jax.errors import InputError
from memvos_jax.inference.core import normalize
from memvos_jax.models.stcn import FAMILY, bn_init, loss, unroll
from memvos_jax.registry import build_model
from memvos_jax.training import config_check, trainer, writers
from memvos_jax.training import state as state_lib

from conftest import CHILD_TIMEOUT_S, REPO
from helpers import updates_on_one_batch

pytestmark = pytest.mark.fast_compile   # our update against our update

SMALL = dict(key_dim=16, value_dim=32)


def small_config(**training):
  c = stcn.get_config('tiny')
  with c.unlocked():
    c.network.key_dim, c.network.value_dim = SMALL['key_dim'], SMALL['value_dim']
    c.training.crop_size = 32
    c.training.batch_size = 2
    c.training.num_steps = 20
    c.training.warmup_steps = 0
    c.training.eval_every = 0
    c.training.progress = False
    c.data.threads = 0
    for k, v in training.items():
      c.training[k] = v
  return c


def training_start(c):
  """(model, optimiser, first batch without its index, variables with BN from that batch)."""
  model = build_model(c)
  batch = sampling.make_dataset(c, 0, 1)[0][0]
  batch.pop('index')
  variables = bn_init.calibrate(model, state_lib.init_variables(c, model, FAMILY), batch)
  return model, state_lib.make_optimizer(c), batch, variables


def test_bootstrapped_ce_is_the_mean_of_the_hardest_pixels():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 8, 8)).astype(np.float32)
  target = rng.integers(0, 3, (8, 8))
  logp = logits - np.log(np.exp(logits).sum(0, keepdims=True))
  raw = -np.take_along_axis(logp, target[None], 0).ravel()
  for p in (1.0, 0.5, 0.15):
    k = int(64 * p)
    want = np.sort(raw)[::-1][:k].mean()
    got = float(loss.bootstrapped_ce(jnp.asarray(logits), jnp.asarray(target), p))
    np.testing.assert_allclose(got, want, rtol=1e-5)
  # The official warm-up: 1 before start, linear, then top_p.
  ps = [float(loss.bootstrap_p(s, 20, 70, 0.15)) for s in (0, 19, 20, 45, 70, 71)]
  np.testing.assert_allclose(ps, [1, 1, 1, 0.575, 0.15, 0.15], rtol=1e-6)


@pytest.mark.slow   # ~30 s
def test_scan_equals_python_unroll_and_frames_read_the_past_only():
  c = small_config()
  model = build_model(c)
  variables = state_lib.init_variables(c, model, FAMILY)
  rng = np.random.default_rng(1)
  frames = normalize(jnp.asarray(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)))
  labels = jnp.asarray(rng.integers(0, 3, (4, 32, 32)), jnp.int32)
  valid = jnp.array([True, False])
  run = jax.jit(functools.partial(unroll.clip_logits, model, variables), static_argnums=3)
  a = run(frames, labels, valid, True)
  b = run(frames, labels, valid, False)
  assert a.shape == (3, 3, 32, 32)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  # The invalid object takes no part; frame 1's prediction ignores later frames.
  assert float(jnp.max(a[:, 2])) <= -1e3
  later = frames.at[2:].set(0.0)
  np.testing.assert_allclose(run(later, labels, valid, True)[0], a[0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(run(later, labels, valid, True)[2], a[2])


@pytest.mark.slow   # ~20 s
def test_loss_falls_on_a_fixed_batch():
  c = small_config(crop_size=48, learning_rate=1e-4, bce_start_warm=1000, bce_end_warm=2000)
  model, _, batch, variables = training_start(c)
  losses = [r['loss'] for r in updates_on_one_batch(model, c, variables, batch, loss.loss_fn, 12)]
  print('losses', [round(l, 4) for l in losses])
  assert all(np.isfinite(losses))
  assert max(losses[-3:]) < 0.5 * losses[0], losses


def test_event_file_and_jsonl(tmp_path):
  assert writers.crc32c(b'123456789') == 0xE3069283   # the CRC-32C check value
  w = writers.MetricWriter(str(tmp_path))
  w.write(3, {'loss': 1.5, 'val/J&F': 0.25}, indices=[1, 2])
  w.write(4, {'loss': 1.25})
  w.close()
  tb = list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))
  assert len(tb) == 1
  assert writers.read_scalars(str(tb[0])) == [(3, 'loss', 1.5), (3, 'val/J&F', 0.25),
                                              (4, 'loss', 1.25)]
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert rows[0] == {'step': 3, 'loss': 1.5, 'val/J&F': 0.25, 'indices': [1, 2]}


def test_bad_values_are_refused_before_building_anything(tmp_path, monkeypatch):
  c = small_config(batch_size=6)
  with pytest.raises(InputError, match='batch_size: 6 is not divisible by the 4 devices'):
    config_check.check(c, 4)
  with c.unlocked():
    c.data.davis_root = str(tmp_path / 'missing')
  with pytest.raises(InputError, match='davis_root: folder .* does not exist'):
    config_check.check(c, 1)
  with pytest.raises(InputError, match='clip_loop'):
    config_check.check(small_config(clip_loop='while'), 1)
  with pytest.raises(InputError, match='max_skip_values'):
    config_check.check(small_config(max_skip_values=(-1, 2, 3, 4, 5, 3)), 1)
  bad = small_config()
  with bad.unlocked():
    bad.network.decoder_dims = (64, 32)
  with pytest.raises(InputError, match='decoder_dims'):
    config_check.check(bad, 1, family=FAMILY)
  with pytest.raises(ValueError, match='unknown variant'):
    stcn.get_config('huge')
  # train(): the config is checked before the model is built or compiled.
  unbuilt = dataclasses.replace(FAMILY, build=lambda **kw: pytest.fail('built'))
  with pytest.raises(InputError, match='davis_root'):
    trainer.train(unbuilt, c, str(tmp_path / 'w'), loss_fn=loss.loss_fn)


@pytest.mark.parametrize('flag, message', [
    ('--config.training.batch_sise=4', 'batch_sise'),
    ('--config.training.batch_size=four', 'batch_size'),
    ('--config.data.static_root=/nonexistent/x', 'static_root: folder /nonexistent/x does not exist'),
])
def test_cli_reports_config_errors(flag, message, tmp_path):
  r = subprocess.run([sys.executable, str(REPO / 'train.py'), '--config',
                      str(REPO / 'configs/stcn.py:tiny'), f'--workdir={tmp_path}', flag],
                     capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S)
  assert r.returncode != 0
  assert message in r.stderr, r.stderr[-2000:]
  assert 'Traceback' not in r.stderr or 'batch_s' in flag   # absl flag errors are one line
