"""One training step on an 8-device CPU mesh equals the 1-device step (same global batch).

Runs in a subprocess so that XLA_FLAGS=--xla_force_host_platform_device_count=8
applies before jax starts. Parameters replicated and parameters sharded
(``training.param_sharding='sharded'``) are both compared to one device, at
the official learning rate (1e-5). Adam's first update is g / (|g| + eps):
for the few gradients near zero the sign flips under any change of summation
order, so the parameter difference scales with the learning rate (at 1e-4 it
is ~1e-6 replicated and ~1e-5 sharded relative to the parameters' norm).
"""

import json
import subprocess
import sys

import pytest

from conftest import CHILD_TIMEOUT_S, REPO, child_env

pytestmark = pytest.mark.slow   # an 8-device training step in a subprocess: ~95 s on 2 CPU cores

SCRIPT = r'''
import json
import jax, numpy as np
from test_train_step import small_config, training_start
from memvos_jax.models.stcn import loss
from memvos_jax.training import state as state_lib, update as update_lib

assert jax.device_count() == 8, jax.devices()
c = small_config(batch_size=8, crop_size=32, learning_rate=1e-5, init_rng='rbg')
model, opt, batch, variables = training_start(c)
p0 = jax.tree.leaves(variables['params'])

def one_step(mode, devices):
  with c.unlocked():
    c.training.param_sharding = mode
  mesh = update_lib.make_mesh(devices)
  state = state_lib.create_state(variables, opt)
  step, sh = update_lib.make_update(model, c, opt, mesh, jax.eval_shape(lambda: state),
                                    loss.loss_fn)
  state = jax.device_put(state, sh)
  new, m = step(state, update_lib.put_batch(dict(batch), mesh))
  shard_counts = {len(x.sharding.device_set) for x in jax.tree.leaves(new.params)}
  return float(m['loss']), [np.asarray(x) for x in jax.tree.leaves(new.params)], shard_counts, \
      new.params

loss1, params1, _, _ = one_step('replicated', jax.devices()[:1])
out = {}
for mode in ('replicated', 'sharded'):
  loss8, params8, counts, tree = one_step(mode, jax.devices())
  specs = {str(x.sharding.spec) for x in jax.tree.leaves(tree)}
  num = np.sqrt(sum(np.sum((a - b) ** 2.0) for a, b in zip(params8, params1)))
  den = np.sqrt(sum(np.sum(b ** 2.0) for b in params1))
  upd = np.sqrt(sum(np.sum((a - b) ** 2.0) for a, b in zip(params1, p0)))
  out[mode] = dict(loss1=loss1, loss8=loss8, loss_rel=abs(loss8 - loss1) / abs(loss1),
                   params_rel=float(num / den), update_rel=float(num / upd),
                   sharded_leaves=sum("'data'" in s for s in specs), specs=len(specs))
print('RESULT', json.dumps(out))
'''


def test_eight_devices_equal_one():
  env = child_env(devices=8)       # both sides in this one child: the same XLA flags
  # Run from tests/ so that the script imports test_train_step (memvos_jax: the venv's install).
  r = subprocess.run([sys.executable, '-c', SCRIPT], capture_output=True, text=True,
                     cwd=REPO / 'tests', env=env, timeout=CHILD_TIMEOUT_S)
  assert r.returncode == 0, r.stderr[-3000:]
  line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')][-1]
  res = json.loads(line[len('RESULT '):])
  print(res)
  for mode, d in res.items():
    assert d['loss_rel'] <= 1e-5, (mode, d)
    assert d['params_rel'] <= 1e-5, (mode, d)
  assert res['sharded']['sharded_leaves'] >= 1      # some parameters really are split
