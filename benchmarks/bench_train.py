"""Training throughput: sequences/s of the jitted update, compile time, peak memory.

  python benchmarks/bench_train.py [--config configs/stcn.py:tiny] [--steps 10] \
      [--config.training.crop_size=128]

A sequence is one training clip (``training.num_frames`` frames, up to
``training.max_objects`` objects). Data loading runs ahead in grain's threads
and is excluded from the timed update (``block_until_ready`` on each step);
its own rate is reported separately. Peak RSS is the process maximum.
"""

import json
import os
import resource
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'configs', 'stcn.py') + ':tiny', 'Training config.', lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after one warm-up step).')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np
  from memvos_jax.data import sampling
  from memvos_jax.models.stcn import FAMILY, loss
  from memvos_jax.registry import build_model
  from memvos_jax.training import state as state_lib, update as update_lib

  c = _CONFIG.value
  t = c.training
  model = build_model(c)
  opt = state_lib.make_optimizer(c)
  state = state_lib.create_state(state_lib.init_variables(c, model, FAMILY), opt)
  mesh = update_lib.make_mesh()
  update, sh = update_lib.make_update(model, c, opt, mesh, jax.eval_shape(lambda: state),
                                      loss.loss_fn)
  state = jax.device_put(state, sh)
  ds, desc = sampling.make_dataset(c)
  it = sampling.make_iterator(ds, c)

  tic = time.perf_counter()
  batches = [next(it) for _ in range(_STEPS.value + 1)]
  data_s = (time.perf_counter() - tic) / len(batches)
  for b in batches:
    b.pop('index')

  tic = time.perf_counter()
  state, m = update(state, update_lib.put_batch(batches[0], mesh))
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - tic
  times = []
  for b in batches[1:]:
    tic = time.perf_counter()
    state, m = update(state, update_lib.put_batch(b, mesh))
    jax.block_until_ready(m)
    times.append(time.perf_counter() - tic)
  step_s = float(np.median(times))
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # KiB -> GiB
  out = {
      'device': f'{jax.device_count()} x {jax.devices()[0].device_kind}',
      'network': dict(c.network), 'crop': t.crop_size, 'frames': t.num_frames,
      'objects': t.max_objects, 'batch': t.batch_size, 'data': desc,
      'first_step_s (compile)': round(compile_s, 2),
      'step_s (median)': round(step_s, 3), 'step_s (min)': round(min(times), 3),
      'sequences_per_s': round(t.batch_size / step_s, 3),
      'data_sequences_per_s (1 loader)': round(t.batch_size / data_s, 2),
      'peak_rss_gib': round(rss, 2),
  }
  print(json.dumps(out, indent=1))


if __name__ == '__main__':
  app.run(main)
