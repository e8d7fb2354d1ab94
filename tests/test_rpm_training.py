"""RPM-Net self-supervised training: frame pairs, evaluation pseudo-clips, loss falls."""

import pathlib

import numpy as np
import pytest

from memvos_jax.configs import rpm as rpm_config
from memvos_jax.data import frame_pairs
from memvos_jax.errors import InputError

from conftest import CHILD_TIMEOUT_S, child_env

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / 'examples'


def test_frame_folders_and_pairs():
  folders = frame_pairs.find_frame_folders(str(EXAMPLES))
  assert folders == [EXAMPLES / 'bike_small' / 'JPEGImages' / 'bike']   # no Annotations folder
  data = frame_pairs.FramePairs(folders, crop=48, short_side=64, max_gap=2, max_shift=4, seed=3)
  a = data.batch(5, 3)
  b = data.batch(5, 3)
  assert a['target'].shape == a['reference'].shape == (3, 48, 48, 3)
  assert a['target'].dtype == np.uint8
  np.testing.assert_array_equal(a['target'], b['target'])          # pure function of the index
  assert not np.array_equal(a['target'], data.batch(6, 3)['target'])
  with pytest.raises(InputError, match='does not exist'):
    frame_pairs.find_frame_folders('/nonexistent/frames')
  with pytest.raises(ValueError, match='short_side'):
    frame_pairs.FramePairs(folders, crop=48, short_side=50, max_shift=4)


def test_pseudo_clips_have_dense_ground_truth():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
  mask = np.zeros((60, 90), np.uint8)
  mask[20:35, 30:50] = 1
  mask[40:50, 10:20] = 2
  still, still_m = frame_pairs.pan_clip(image, mask, 4, (40, 64), rng, speed=0.0, zoom=0.0)
  assert still.shape == (4, 40, 64, 3) and still_m.shape == (4, 40, 64)
  for t in range(1, 4):
    np.testing.assert_array_equal(still[t], still[0])
  frames, masks = frame_pairs.pan_clip(image, mask, 6, (40, 64), rng, speed=3.0)
  assert set(np.unique(masks)) <= {0, 1, 2} and (masks[0] > 0).any()
  assert not np.array_equal(masks[0], masks[-1])
  bg = rng.integers(0, 255, (5, 30, 40, 3), dtype=np.uint8)
  frames, masks = frame_pairs.paste_clip(image, mask, bg, (40, 60), rng, speed=2.0)
  assert frames.shape == (5, 40, 60, 3) and set(np.unique(masks[0])) == {0, 1, 2}
  assert not np.array_equal(masks[0], masks[-1])


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_reconstruction_loss_falls_below_copying(tmp_path):
  """A few dozen updates on the bundled example frames: the loss drops, and
  below the loss of copying the reference unchanged (zero displacement)."""
  from memvos_jax.models import rpm
  from memvos_jax.registry import build_model, load_variables
  config = rpm_config.get_config('tiny')
  config.network.planes = (8, 8, 16, 16)
  config.network.width = 16
  config.data.train_roots = str(EXAMPLES)
  config.data.short_side = 80
  t = config.training
  t.crop_size, t.batch_size, t.max_shift, t.max_gap = 64, 4, 6, 1
  t.num_steps, t.log_every, t.learning_rate, t.lr_steps = 60, 15, 2e-3, (1000,)
  variables, history = rpm.train(config, str(tmp_path), log=lambda s: None)
  ratio = [h['loss'] / h['identity'] for h in history]
  assert ratio[-1] < ratio[0] and ratio[-1] < 0.95, ratio
  assert history[-1]['loss'] < history[0]['loss'], history
  # The export is what eval.py loads.
  config.checkpoint = str(tmp_path / 'export')
  back = load_variables(config, build_model(config))
  np.testing.assert_array_equal(back['params']['matcher']['match2']['kernel'],
                                variables['params']['matcher']['match2']['kernel'])


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_train_py_dispatches_to_the_rpm_trainer(tmp_path):
  """``python train.py --config configs/rpm.py:tiny`` runs RPM's self-supervised
  trainer (``models.rpm.FAMILY.trainer``), not STCN's, and exports eval.py's weights;
  a model without a trainer is one line naming the trainable ones."""
  import subprocess
  import sys
  small = ['--config.network.planes=(8,8,16,16)', '--config.network.width=16',
           f'--config.data.train_roots={EXAMPLES}', '--config.data.short_side=80',
           '--config.training.crop_size=64', '--config.training.batch_size=2',
           '--config.training.num_steps=2', '--config.training.log_every=1']
  r = subprocess.run([sys.executable, str(REPO / 'train.py'),
                      '--config', str(REPO / 'configs' / 'rpm.py:tiny'),
                      f'--workdir={tmp_path / "rpm"}', *small],
                     capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=child_env())
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'step 2: loss' in r.stdout, r.stdout
  assert (tmp_path / 'rpm' / 'export').is_dir() and (tmp_path / 'rpm' / 'history.json').exists()
  from memvos_jax import registry
  untrained = sorted(set(registry.FAMILIES) - set(registry.trainable()))
  if not untrained:
    return
  name = untrained[0]
  r = subprocess.run([sys.executable, str(REPO / 'train.py'),
                      '--config', str(REPO / 'configs' / f'{name}.py'),
                      f'--workdir={tmp_path / name}'],
                     capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
  assert r.returncode == 2
  errors = [l for l in r.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and f"model {name!r} has no trainer" in errors[0], r.stderr[-2000:]
  assert f'train.py trains: {", ".join(registry.trainable())}' in errors[0]
  assert 'Traceback' not in r.stderr
