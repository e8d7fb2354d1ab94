"""Training data: frame sampling, curriculum, determinism, sharding, checkpointable
iterator, synthetic videos without ../shared, DAVIS-layout and static folders."""

import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from memvos_jax.data import sampling, sources, synthetic
from memvos_jax.errors import InputError

from conftest import need_shared
from test_train_step import small_config


def _config(**training):
  """32 px crops, batch 4, 10 steps (the curriculum's step fractions), no read threads."""
  return small_config(**{'batch_size': 4, 'num_steps': 10} | training)


def test_sample_frames_follow_the_official_rule():
  rng = np.random.default_rng(0)
  for _ in range(300):
    length, skip = int(rng.integers(3, 40)), int(rng.integers(1, 30))
    idx = sampling.sample_frames(rng, length, skip, 3, reverse_prob=0.0)
    assert all(0 <= i < length for i in idx)
    assert idx[0] <= idx[1] <= idx[2]
    mj = min(length, skip)
    assert idx[1] - idx[0] <= mj + 1 and idx[2] - idx[1] <= mj + 1


def test_max_skip_zero_gives_still_clips():
  rng = np.random.default_rng(1)
  for _ in range(50):
    length = int(rng.integers(1, 40))
    idx = sampling.sample_frames(rng, length, 0, 3)
    assert len(set(idx)) == 1 and 0 <= idx[0] < length
  # Through the pipeline: the tiny curriculum opens with still synthetic clips.
  c = _config(max_skip_values=(0, 3), max_skip_boundaries=(0.5,))
  ds, _ = sampling.make_dataset(c, 0, 1)
  still = ds[0]                                    # batch of step 0: max skip 0
  assert (still['frames'] == still['frames'][:, :1]).all()
  assert (still['labels'] == still['labels'][:, :1]).all()
  moving = ds[9]                                   # step 9 of 10: max skip 3
  assert not (moving['frames'] == moving['frames'][:, :1]).all()


def test_curriculum_steps_through_the_values():
  values, bounds = (5, 10, 15, 20, 25, 5), (0.1, 0.2, 0.3, 0.4, 0.9)
  got = [sampling.max_skip_at(s, 100, values, bounds) for s in (0, 9, 10, 25, 35, 50, 89, 90, 99)]
  assert got == [5, 5, 10, 15, 20, 25, 25, 5, 5]


def test_batches_are_deterministic_resumable_and_shard_the_global_batch():
  c = _config()
  ds, desc = sampling.make_dataset(c, 0, 1)
  assert 'synthetic' in desc
  it = sampling.make_iterator(ds, c)
  first = [next(it) for _ in range(3)]
  b = first[0]
  assert b['frames'].shape == (4, 3, 32, 32, 3) and b['frames'].dtype == np.uint8
  assert b['labels'].shape == (4, 3, 32, 32) and b['valid'].shape == (4, 2)
  assert [list(x['index']) for x in first] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
  # Labels only use valid slots.
  for lab, val in zip(b['labels'], b['valid']):
    assert lab.max() <= val.sum()
  # Same seed -> same data; the iterator state resumes at the next batch.
  it2 = sampling.make_iterator(sampling.make_dataset(c, 0, 1)[0], c)
  next(it2)
  state = it2.get_state()
  it3 = sampling.make_iterator(sampling.make_dataset(c, 0, 1)[0], c)
  it3.set_state(state)
  np.testing.assert_array_equal(next(it3)['frames'], first[1]['frames'])
  # Two processes: each reads half of every global batch.
  halves = [next(sampling.make_iterator(sampling.make_dataset(c, p, 2)[0], c)) for p in (0, 1)]
  for key in ('frames', 'labels', 'valid', 'index'):
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), b[key])
  # Another seed -> other data.
  c2 = _config(seed=1)
  other = next(sampling.make_iterator(sampling.make_dataset(c2, 0, 1)[0], c2))
  assert not np.array_equal(other['frames'], b['frames'])


def test_synthetic_without_bundled_frames(monkeypatch, tmp_path):
  monkeypatch.setattr(synthetic, 'TEXTURE_DIRS', (tmp_path / 'none',))
  synthetic.texture_bank.cache_clear()
  try:
    bank = synthetic.texture_bank()
    assert len(bank) == 8          # procedural textures only
    src = synthetic.SyntheticSource(synthetic.SyntheticSettings(size=(48, 48)), 12, 5, seed=3)
    frames, ids = src.load(1, [0, 4, 8])
    assert frames.shape == (3, 48, 48, 3) and ids.shape == (3, 48, 48)
    assert ids.max() >= 1
    # Objects move: the masks differ between frames.
    assert not np.array_equal(ids[0], ids[2])
  finally:
    synthetic.texture_bank.cache_clear()


def _small_davis(root: pathlib.Path, real: pathlib.Path, clip='judo', size=(96, 160)):
  """A DAVIS-layout copy of a shared clip's annotated frames, downscaled."""
  img_dir = root / 'JPEGImages' / '480p' / clip
  ann_dir = root / 'Annotations' / '480p' / clip
  img_dir.mkdir(parents=True)
  ann_dir.mkdir(parents=True)
  for png in sorted((real / 'Annotations' / clip).glob('*.png')):
    jpg = real / 'JPEGImages' / clip / (png.stem + '.jpg')
    Image.open(jpg).convert('RGB').resize(size[::-1], Image.BILINEAR).save(img_dir / jpg.name)
    m = Image.open(png)
    m.resize(size[::-1], Image.NEAREST).save(ann_dir / png.name)
  return root


def test_davis_layout_and_static_folders(tmp_path):
  real = need_shared('data', 'real_clips')
  davis = _small_davis(tmp_path / 'davis', real)
  static = tmp_path / 'static'
  static.mkdir()
  for i, src in enumerate(sorted((davis / 'JPEGImages' / '480p' / 'judo').glob('*.jpg'))[:2]):
    shutil.copy(src, static / f'im{i}.jpg')
    ann = np.array(Image.open(davis / 'Annotations' / '480p' / 'judo' / (src.stem + '.png')))
    Image.fromarray(((ann == 1) * 255).astype(np.uint8)).save(static / f'im{i}.png')
  c = _config(max_objects=2)
  with c.unlocked():
    c.data.davis_root = str(davis)
    c.data.static_root = str(static)
  ds, desc = sampling.make_dataset(c, 0, 1)
  assert 'davis (1 videos x5)' in desc and 'static (2 images)' in desc
  batch = next(sampling.make_iterator(ds, c))
  assert batch['frames'].shape == (4, 3, 32, 32, 3)
  # Crops may miss every object after the official 5 retries (then all
  # background, no valid slot); most samples have one.
  assert batch['valid'][:, 0].sum() >= 2
  for lab, val in zip(batch['labels'], batch['valid']):
    assert lab.max() <= val.sum() and (lab[0] > 0).any() == val[0]
  # Stage 0: static pseudo-videos only, single object -> second slot invalid.
  c0 = _config(stage=0, max_objects=2)
  with c0.unlocked():
    c0.data.static_root = str(static)
  b0 = next(sampling.make_iterator(sampling.make_dataset(c0, 0, 1)[0], c0))
  assert b0['valid'][:, 0].any() and not b0['valid'][:, 1].any()
  assert set(np.unique(b0['labels'])) <= {0, 1}


def test_missing_or_empty_data_folder_is_refused(tmp_path):
  with pytest.raises(InputError, match='does not exist'):
    sources.StaticFolderSource(tmp_path / 'nope')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(InputError, match='no image\\+mask pairs'):
    sources.StaticFolderSource(tmp_path / 'empty')
  (tmp_path / 'v' / 'JPEGImages' / 'a').mkdir(parents=True)
  with pytest.raises(InputError):
    sources.VideoFolderSource(tmp_path / 'v', 'davis')
