"""TFDS / ArrayRecord training data (memvos_jax/data/tfds_vos): built and read without
TensorFlow, ids and frame order intact, the same samples, batches and first losses as the
folders, per-process shards that cover each global batch once, exact resume."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from memvos_jax.configs import stcn
from memvos_jax.data import sampling, sources, video_folder
from memvos_jax.data.tfds_vos import builders, reader
from memvos_jax.errors import InputError
from memvos_jax.training import config_check

from conftest import CHILD_TIMEOUT_S, REPO, need_shared

pytestmark = pytest.mark.fast_compile   # folders against ArrayRecord

DAVIS16 = ('bear', 'bmx-bumps', 'boat')   # davis2016_train clips built (a small, fast build)
FRAMES = 5                                # annotated frames kept per clip (davis2017_extra: both)


def _subset(src_root, dst_root, year: str, clips):
  """A DAVIS-layout copy (symlinks) of the first ``FRAMES`` annotated frames of ``clips``."""
  for clip in video_folder.find_clips(src_root, sorted(clips)):
    idx = sorted(clip.annotation_paths)[:FRAMES]
    for i in idx:
      for path, kind in ((clip.frame_paths[i], 'JPEGImages'),
                         (clip.annotation_paths[i], 'Annotations')):
        rel = path.relative_to(src_root / kind)
        (dst_root / kind / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst_root / kind / rel).symlink_to(path)
  (dst_root / 'ImageSets' / year).mkdir(parents=True)
  (dst_root / 'ImageSets' / year / 'train.txt').write_text('\n'.join(sorted(clips)) + '\n')
  return dst_root


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
  """(data_dir, folder subset 2016, folder subset 2017): built straight from ../shared with
  ``clips``/``max_frames``, and the same frames as folders."""
  d16 = need_shared('data', 'davis2016_train')
  d17 = need_shared('data', 'davis2017_extra')
  tmp = tmp_path_factory.mktemp('tfds_davis')
  data_dir = tmp / 'tfds'
  builders.build('davis_vos/2016', d16, data_dir, clips=DAVIS16, max_frames=FRAMES)
  # Small files: the 2017 split spans several ArrayRecord shards.
  b = builders.build('davis_vos/2017', d17, data_dir, max_frames=FRAMES, shard_mb=0.2)
  assert b.info.splits['train'].num_shards >= 2
  return (data_dir, _subset(d16, tmp / 'f16', '2016', DAVIS16),
          _subset(d17, tmp / 'f17', '2017', video_folder.clip_names(d17)))


def test_davis_build_keeps_ids_and_frame_order_without_tensorflow(davis):
  data_dir = davis[0]
  import tensorflow_datasets as tfds
  for name, root, year in (('davis_vos/2016', need_shared('data', 'davis2016_train'), '2016'),
                           ('davis_vos/2017', need_shared('data', 'davis2017_extra'), '2017')):
    src = reader.TfdsVideoSource(name, str(data_dir), 'train', min_frames=1)
    want = sorted(DAVIS16) if year == '2016' else video_folder.clip_names(root)
    assert [src.clip_name(i) for i in range(len(src))] == want
    plain = tfds.data_source(name, data_dir=str(data_dir), split='train')   # TFDS's own decode
    for i in range(len(src)):
      clip = video_folder.find_clip(root, src.clip_name(i))
      idx = sorted(clip.annotation_paths)[:src.num_frames(i)]
      assert src.num_frames(i) == FRAMES
      _, frames, ids = reader.read_clip(src, i)
      for j, k in enumerate(idx):
        image, label = sources.read_pair(clip.frame_paths[k], clip.annotation_paths[k])
        np.testing.assert_array_equal(frames[j], image)
        np.testing.assert_array_equal(ids[j], label)
      _, s, first, n = src.clips[i]
      recs = [plain[first + j] for j in range(n)]
      assert [r['frame_name'].decode() for r in recs] == [clip.frame_paths[k].stem for k in idx]
      np.testing.assert_array_equal(np.stack([r['mask'][..., 0] for r in recs]), ids)
    if year == '2017':   # multi-object ids kept (schoolgirls: 7 objects)
      assert max(len(np.unique(reader.read_clip(src, i)[2])) for i in range(len(src))) == 8
  assert 'tensorflow' not in sys.modules


def _config(**data):
  c = stcn.get_config('tiny')
  with c.unlocked():
    c.network.key_dim, c.network.value_dim = 16, 32
    c.training.crop_size = 48
    c.training.batch_size = 4
    c.training.num_steps = 40
    c.training.eval_every = 0
    c.training.progress = False
    c.training.init_rng = 'rbg'
    c.training.max_skip_values = (3, 5)       # a real skip: sampled frame indices vary
    c.training.max_skip_boundaries = (0.5,)
    c.data.threads = 0
    c.data.synthetic_with_real = 0
    for k, v in data.items():
      c.data[k] = v
  return c


def _folder_and_tfds(davis, **extra):
  data_dir, f16, f17 = davis
  common = dict(heldout='boat', paste_clips=3, frame_short_side=120, **extra)
  folder = _config(davis_root=str(f16), davis_extra_roots=str(f17), **common)
  tfds_ = _config(tfds_dir=str(data_dir), davis_tfds='davis_vos/2016, davis_vos/2017', **common)
  return folder, tfds_


def _assert_same_batches(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_first_batches_are_the_folders_batches(davis):
  folder, tfds_ = _folder_and_tfds(davis)
  config_check.check(tfds_, 1)
  ds_f, desc_f = sampling.make_dataset(folder, 0, 1)
  ds_t, desc_t = sampling.make_dataset(tfds_, 0, 1)
  assert 'davis_vos/2016[train] (2 videos x5)' in desc_t, desc_t   # boat held out
  assert 'davis_vos/2017[train] (2 videos x5)' in desc_t and 'pasted' in desc_t, desc_t
  for step in (0, 1, 2, 25):    # 25: past the curriculum's boundary
    _assert_same_batches(ds_f[step], ds_t[step])
  # Exact resume: an iterator from step 2 (threads reading the shards) is the same stream.
  with tfds_.unlocked():
    tfds_.data.threads = 2
  it = sampling.make_iterator(ds_t, tfds_, 2)
  _assert_same_batches(next(it), ds_f[2])
  _assert_same_batches(next(it), ds_f[3])


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_first_logged_losses_are_the_folders_losses(davis):
  """The loss the trainer logs at step 1 (``train_step``'s ``loss_fn`` at the initial
  state) on batch 0 of each pipeline: one forward compile, two calls."""
  import functools
  import jax
  from memvos_jax.models.stcn import FAMILY, loss
  from memvos_jax.registry import build_model
  from memvos_jax.training import state as state_lib
  folder, tfds_ = _folder_and_tfds(davis)
  for c in (folder, tfds_):
    with c.unlocked():
      c.training.batch_size, c.training.crop_size = 2, 32
  model = build_model(folder)
  variables = state_lib.init_variables(folder, model, FAMILY)
  first_loss = jax.jit(lambda batch: functools.partial(loss.loss_fn, model=model, config=folder)(
      variables['params'], variables['batch_stats'], batch, 0)[0])
  losses = []
  for c in (folder, tfds_):
    batch = sampling.make_dataset(c, 0, 1)[0][0]
    batch.pop('index')
    losses.append(float(first_loss(batch)))
  assert np.isfinite(losses[0]) and losses[0] == losses[1], losses


def _write_clip(root, name, n, every, objects, size=(48, 64)):
  """A generic-layout clip: n frames, an annotation on every ``every``-th (object k from k)."""
  h, w = size
  rng = np.random.default_rng(len(name))
  (root / 'JPEGImages' / name).mkdir(parents=True)
  (root / 'Annotations' / name).mkdir(parents=True)
  for t in range(n):
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(frame).save(root / 'JPEGImages' / name / f'{t:05d}.jpg', quality=90)
    if t % every == 0:
      ids = np.zeros((h, w), np.uint8)
      for k in range(1, objects + 1):
        if t >= (k - 1) * every:          # object k appears at annotated frame k-1
          ids[4 * k:4 * k + 10, 5 * k + t:5 * k + t + 12] = k
      im = Image.fromarray(ids, mode='P')
      im.putpalette(video_folder.davis_palette())
      im.save(root / 'Annotations' / name / f'{t:05d}.png')


@pytest.fixture(scope='module')
def youtube(tmp_path_factory):
  """(data_dir, folder): a YouTube-VOS 2019 train layout (every 5th frame annotated) and its build."""
  root = tmp_path_factory.mktemp('yvos') / 'train'
  videos = {}
  for name, n, objects in (('a1b2c3', 16, 3), ('0d4e5f', 21, 2), ('zz', 6, 1), ('short', 5, 1)):
    _write_clip(root, name, n, 5, objects)
    videos[name] = {'objects': {str(k): {'category': f'cat{k}',
                                         'frames': [f'{t:05d}' for t in range(0, n, 5)]}
                                for k in range(1, objects + 1)}}
  (root / 'meta.json').write_text(json.dumps({'videos': videos}))
  data_dir = root.parent / 'tfds'
  builders.build('youtube_vos2019', root, data_dir)
  return data_dir, root


def test_youtube_vos_layout_keeps_sparse_frames_and_categories(youtube):
  data_dir, root = youtube
  src = reader.TfdsVideoSource('youtube_vos2019', str(data_dir), 'train')
  folder = sources.VideoFolderSource(root, 'youtube-vos')
  assert [src.clip_name(i) for i in range(len(src))] == ['0d4e5f', 'a1b2c3']  # >= 3 frames
  assert [src.clip_name(i) for i in range(len(src))] == [c[0] for c in folder.clips]
  for i in range(len(src)):
    assert src.num_frames(i) == folder.num_frames(i)
    got, want = src.load(i, range(src.num_frames(i))), folder.load(i, range(folder.num_frames(i)))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
  src._remote = True                                      # gs:// reads: batched, threaded
  np.testing.assert_array_equal(src.load(1, [3, 0, 2])[1], folder.load(1, [3, 0, 2])[1])
  _, frames, ids = reader.read_clip(src, 1)               # a1b2c3: annotated 0, 5, 10, 15
  assert [sorted(np.unique(m)) for m in ids] == [[0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]
  meta = dict(reader.open_builder('youtube_vos2019', str(data_dir)).info.metadata)
  assert meta['clips']['train'][1] == ['a1b2c3', 4]
  assert meta['objects']['a1b2c3'] == {'1': 'cat1', '2': 'cat2', '3': 'cat3'}
  import tensorflow_datasets as tfds
  names = [r['frame_name'].decode() for r in tfds.data_source(
      'youtube_vos2019', data_dir=str(data_dir), split='train')]
  assert names[:5] == ['00000', '00005', '00010', '00015', '00020']   # 0d4e5f's frames


def test_static_images_are_the_folders_pseudo_videos(tmp_path):
  root = tmp_path / 'static'
  rng = np.random.default_rng(0)
  for rel in ('ecssd/0001', 'ecssd/0002', 'duts/sub/x', 'duts-extra'):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
        root / f'{rel}.jpg')
    mask = np.zeros((40, 56), np.uint8)
    mask[8:30, 10:40] = 255
    Image.fromarray(mask).save(root / f'{rel}.png')
  builders.build('vos_static_images', root, tmp_path / 'tfds')
  src = reader.TfdsStaticSource('vos_static_images', str(tmp_path / 'tfds'))
  folder = sources.StaticFolderSource(root, num_frames=3, out_size=32)
  src.out_size = 32
  assert len(src) == len(folder) == 4
  for i in range(len(src)):
    a = src.load(i, [0, 1, 2], np.random.default_rng(i))
    b = folder.load(i, [0, 1, 2], np.random.default_rng(i))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
  c = _config(tfds_dir=str(tmp_path / 'tfds'), static_tfds='vos_static_images')
  with c.unlocked():
    c.training.stage = 0
  config_check.check(c, 1)
  assert 'vos_static_images[train] (4 images)' in sampling.build_sources(c)[3]


_CHILD = """
import json, sys, hashlib
from memvos_jax.data import sampling
from test_tfds_data import _config
c = _config(tfds_dir=sys.argv[1], yvos_tfds='youtube_vos2019')
k = int(sys.argv[2])
ds, _ = sampling.make_dataset(c, k, 2)
it = sampling.make_iterator(ds, c, 0)
out = []
for step in range(3):
  b = next(it)
  out.append({'indices': b['index'].tolist(),
              'frames': [hashlib.sha256(f.tobytes()).hexdigest() for f in b['frames']]})
print(json.dumps(out))
"""


def test_two_processes_read_disjoint_shards_covering_each_global_batch(youtube):
  data_dir = str(youtube[0])
  procs = [subprocess.Popen([sys.executable, '-c', _CHILD, data_dir, str(k)], cwd=REPO,
                            env={**os.environ, 'PYTHONPATH': str(REPO / 'tests'),
                                 'JAX_PLATFORMS': 'cpu'},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for k in range(2)]
  outs = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=CHILD_TIMEOUT_S)
    assert p.returncode == 0, stderr[-3000:]
    outs.append(json.loads(stdout.strip().splitlines()[-1]))
  c = _config(tfds_dir=data_dir, yvos_tfds='youtube_vos2019')
  whole, _ = sampling.make_dataset(c, 0, 1)
  for step in range(3):
    a, b = outs[0][step], outs[1][step]
    assert not set(a['indices']) & set(b['indices'])
    assert a['indices'] + b['indices'] == list(range(4 * step, 4 * step + 4))
    want = [hashlib.sha256(f.tobytes()).hexdigest() for f in whole[step]['frames']]
    assert a['frames'] + b['frames'] == want


def test_bad_datasets_and_splits_are_one_line(youtube, tmp_path):
  data_dir = str(youtube[0])
  with pytest.raises(InputError, match='davis_vos/2017: not built: build it with'):
    reader.TfdsVideoSource('davis_vos/2017', str(tmp_path))
  with pytest.raises(InputError, match="no split 'val' \\(has train\\)"):
    reader.TfdsVideoSource('youtube_vos2019', data_dir, 'val')
  with pytest.raises(InputError, match='only whole splits'):
    reader.TfdsVideoSource('youtube_vos2019', data_dir, 'train[:50%]')
  with pytest.raises(InputError, match='no meta.json'):
    builders.build('youtube_vos2019', tmp_path, tmp_path / 'out')
  c = _config(tfds_dir=data_dir, davis_tfds='davis_vos/2017')
  with c.unlocked():
    c.training.stage = 0
  with pytest.raises(InputError, match='stage 0 trains on data.static_root/static_tfds'):
    config_check.check(c, 1)
  from memvos_jax.data.tfds_vos import __main__ as cli
  assert cli.main(['info', 'youtube_vos2019', f'--data_dir={tmp_path}']) == 2
