"""RPM-Net label propagation through the shared drivers (family 'rpm')."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from helpers import random_frames
from memvos_jax import registry
from memvos_jax.errors import CheckpointError
from memvos_jax.inference import core
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.models.rpm import FAMILY
from memvos_jax.models.rpm import convert as convert_rpm
from memvos_jax.models.rpm import modeling as rpm

pytestmark = pytest.mark.fast_compile   # ours against ours

H, W = 60, 100          # padded (centred) to 64 x 128


@functools.lru_cache(maxsize=None)
def _net():
  model = rpm.RPMNet(backbone='resnet18', planes=(8, 8, 16, 16), width=8)
  return model, rpm.init_variables(model, jax.random.key(0))


def _with_offset(variables, dy, dx):
  """The network with a constant displacement field (last matching layer = bias)."""
  v = jax.tree.map(lambda a: a, variables)
  last = v['params']['matcher']['match2']
  last['kernel'] = jnp.zeros_like(last['kernel'])
  last['bias'] = jnp.asarray([dy, dx], jnp.float32)
  return v


def _first_mask():
  """Two objects aligned to the stride-4 grid of the padded frame."""
  pt, _, pl, _ = core.pad_amounts((H, W), rpm.STRIDE)
  m = np.zeros((H, W), np.uint8)
  m[16 - pt:40 - pt, 32 - pl:56 - pl] = 1
  m[24 - pt:48 - pt, 72 - pl:92 - pl] = 2
  return m


def _frames(t, seed=0):
  return random_frames(t, (H, W), seed)


def test_family_is_registered():
  fam = registry.get('rpm')
  model, _ = _net()
  assert registry.of(model) is fam
  assert fam.memory_frames(100, {0}, {}) == 1
  with pytest.raises(TypeError):
    fam.make_settings(mem_every=5)


def test_zero_displacement_keeps_the_mask_exactly():
  model, variables = _net()
  seg = ClipSegmenter(FAMILY, model, _with_offset(variables, 0.0, 0.0), chunk=3)
  first = _first_mask()
  first[30, 40:44] = 2          # a one-pixel-thin part survives at full resolution
  out = seg.segment_arrays(_frames(7), {0: first})
  assert seg.trace_count == 1                      # 3 chunks, one trace
  for t in range(7):
    np.testing.assert_array_equal(out[t], first)


@pytest.mark.parametrize('propagate,resolution', [('hard', 'full'), ('soft', 'full'),
                                                  ('hard', 'stride4')])
def test_constant_displacement_moves_the_mask(propagate, resolution):
  model, variables = _net()
  seg = ClipSegmenter(FAMILY, model, _with_offset(variables, 0.0, 1.0), chunk=4,
                      propagate=propagate, resolution=resolution, calibrate=False)
  first = _first_mask()
  out = seg.segment_arrays(_frames(4), {0: first})
  for t in range(4):   # frame t samples frame t-1 one stride-4 cell to the right
    want = np.zeros_like(first)
    want[:, :W - 4 * t] = first[:, 4 * t:]
    if (propagate, resolution) == ('hard', 'full'):
      np.testing.assert_array_equal(out[t], want)
    else:   # stride 4 erodes corners, soft blurs edges; the bulk moves the same
      assert np.mean(out[t] == want) > 0.99
      np.testing.assert_array_equal(out[t][want == 0][out[t][want == 0] > 0], [])


def test_calibration_removes_a_field_that_ignores_the_frames():
  """A constant displacement is what the network predicts for a frame against
  itself too: calibrated, nothing moves."""
  model, variables = _net()
  seg = ClipSegmenter(FAMILY, model, _with_offset(variables, 0.7, -1.3), chunk=4,
                      calibrate=True)
  first = _first_mask()
  out = seg.segment_arrays(_frames(4), {0: first})
  for t in range(4):
    np.testing.assert_array_equal(out[t], first)


def test_later_annotation_adds_an_object():
  model, variables = _net()
  seg = ClipSegmenter(FAMILY, model, _with_offset(variables, 0.0, 0.0), chunk=4,
                      max_objects=2)
  first = _first_mask()
  only1 = np.where(first == 1, 1, 0).astype(np.uint8)
  out = seg.segment_arrays(_frames(6), {0: only1, 3: first})
  for t in range(3):
    np.testing.assert_array_equal(out[t], only1)
  for t in range(3, 6):
    np.testing.assert_array_equal(out[t], first)


def test_trained_weights_round_trip_npz_and_bad_keys_refused(tmp_path):
  model, variables = _net()
  path = tmp_path / 'rpm.npz'
  convert_rpm.save_npz(path, variables)
  state = dict(np.load(path))
  back = convert_rpm.convert(state, model, source=str(path))
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(back)):
    np.testing.assert_array_equal(np.asarray(a), b)
  state.pop('params/matcher/match2/bias')
  state['params/extra'] = np.zeros(3)
  with pytest.raises(CheckpointError, match='1 missing.*1 unexpected'):
    convert_rpm.convert(state, model, source=str(path))


def test_eval_py_runs_rpm_and_scores(tmp_path, capsys):
  """``eval.py --config configs/rpm.py:tiny`` on a densely annotated folder."""
  from memvos_jax.configs import rpm as rpm_config
  from memvos_jax.apps import evaluate_folders
  from memvos_jax.data import video_folder
  root = tmp_path / 'data'
  first = _first_mask()
  for t, frame in enumerate(_frames(4)):
    (root / 'JPEGImages' / 'clip').mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(root / 'JPEGImages' / 'clip' / f'{t:05d}.jpg')
    video_folder.write_mask(root / 'Annotations' / 'clip' / f'{t:05d}.png', first,
                            video_folder.davis_palette())
  model, variables = _net()
  convert_rpm.save_npz(tmp_path / 'w.npz', _with_offset(variables, 0.0, 0.0))
  config = rpm_config.get_config('tiny')
  config.network.planes = (8, 8, 16, 16)
  config.network.width = 8
  config.checkpoint = str(tmp_path / 'w.npz')
  config.data.root = str(root)
  assert evaluate_folders.run(config, str(tmp_path / 'out')) == 0
  for t in range(4):
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / 'out' / 'clip' / f'{t:05d}.png')),
                                  first)
  assert 'Global results' in capsys.readouterr().out
