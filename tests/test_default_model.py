"""Real-video training data (DAVIS-2016 layout) and the shipped default model.

The DAVIS-2016 tests build their own small folder (no ../shared needed). The
real-clip test needs ../shared/data/davis2016_train and skips without it.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import memvos_jax
from memvos_jax.configs import default as default_config
from memvos_jax.convert import checkpoint
from memvos_jax.data import sampling, sources, video_folder
from memvos_jax.errors import CheckpointError, InputError
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.models import stcn
from memvos_jax.registry import build_model, load_variables
from memvos_jax.training import evaluation

from conftest import CHILD_TIMEOUT_S, REPO, child_env, need_shared

SEQS = {'alpha': 7, 'beta': 6, 'gamma': 5, 'delta': 5}    # name -> frames
H, W = 72, 128


def _davis2016(root: pathlib.Path, mask_mode: str = 'L') -> pathlib.Path:
  """A DAVIS-2016 style folder: 480p dirs, 0/255 masks, ImageSets/2016/train.txt.

  A bright square moves right over a noisy background; 'delta' is on disk
  but not in the split file.
  """
  rng = np.random.default_rng(0)
  for name, n in SEQS.items():
    img_dir = root / 'JPEGImages' / '480p' / name
    ann_dir = root / 'Annotations' / '480p' / name
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    for t in range(n):
      frame = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
      mask = np.zeros((H, W), np.uint8)
      mask[20:50, 10 + 6 * t:40 + 6 * t] = 255
      frame[mask > 0] = (230, 200, 40)
      Image.fromarray(frame).save(img_dir / f'{t:05d}.jpg')
      if mask_mode == 'P':
        im = Image.fromarray(mask, mode='P')
        im.putpalette(video_folder.davis_palette())
      else:
        im = Image.fromarray(mask, mode='L')
      im.save(ann_dir / f'{t:05d}.png')
  (root / 'ImageSets' / '2016').mkdir(parents=True)
  (root / 'ImageSets' / '2016' / 'train.txt').write_text('alpha\nbeta\ngamma\n')
  return root


@pytest.mark.parametrize('mask_mode', ['L', 'P'])
def test_davis2016_layout_split_heldout_and_binary_masks(tmp_path, mask_mode):
  root = _davis2016(tmp_path / 'davis2016', mask_mode)
  src = sources.VideoFolderSource(root, 'davis', split='train', exclude=['gamma'],
                                  short_side=36)
  assert [c[0] for c in src.clips] == ['alpha', 'beta']          # split file, minus held out
  frames, ids = src.load(0, [0, 3, 6])
  assert frames.shape == (3, 36, 64, 3) and ids.shape == (3, 36, 64)   # shorter side 36
  assert set(np.unique(ids)) == {0, 1}                          # 0/255 -> one object, id 1
  assert ids[2].sum() > 0 and not np.array_equal(ids[0], ids[2])
  everything = sources.VideoFolderSource(root, 'davis', split='no-such-split')
  assert [c[0] for c in everything.clips] == ['alpha', 'beta', 'delta', 'gamma']


@pytest.mark.slow   # trains 2 steps and validates: ~45 s
@pytest.mark.fast_compile   # plumbing: data, validation, the baseline
def test_training_reads_davis2016_and_validates_on_heldout(tmp_path):
  """train() on the folder: held-out clip out of the data, real-clip validation J&F."""
  root = _davis2016(tmp_path / 'davis2016')
  c = default_config.get_config('runlocal')   # fine-tunes the shipped weights (no init)
  with c.unlocked():
    c.data.davis_root = str(root)
    c.data.heldout = 'gamma'
    c.data.synthetic_with_real = 2
    c.data.threads = 0
    c.inference.size = c.training.eval_size = 48
    c.training.num_steps = 2
    c.training.batch_size = 2     # the smallest update that still batches (its compile
    c.training.num_frames = 2     # is most of this test)
    c.training.eval_every = 2
    c.training.checkpoint_every = 2
    c.training.progress = False
  ds, desc = sampling.make_dataset(c, 0, 1)
  assert desc == 'davis (2 videos x4), pasted (60 videos), synthetic (2 videos)'
  summary = stcn.train(c, str(tmp_path / 'run'))
  assert summary['steps'] == 2
  assert 0.0 <= summary['validation']['J&F'] <= 1.0
  # The baseline is scored on 'gamma' at its native size: copying the first
  # mask of a square moving 6 px a frame over 5 frames.
  clips = evaluation.heldout_davis(str(root), ['gamma'], 48)
  assert clips[0][0].shape == (5, 48, 85, 3) and clips[0][1].shape == (5, H, W)
  assert summary['copy_first_frame'] == evaluation.copy_first_frame(clips)


def test_shipped_weights_load_strictly(tmp_path):
  c = default_config.get_config()
  assert c.checkpoint == default_config.WEIGHTS and pathlib.Path(c.checkpoint).is_file()
  assert pathlib.Path(c.checkpoint).stat().st_size < 25 * 2 ** 20
  model = build_model(c)
  variables = load_variables(c, model)
  n = sum(x.size for x in __import__('jax').tree.leaves(variables))
  assert n > 1_000_000
  # A file with one entry missing and one extra is refused, naming both.
  with np.load(c.checkpoint) as z:
    flat = {k: z[k] for k in z.files}
  dropped = sorted(flat)[0]
  flat.pop(dropped)
  flat['params/extra/kernel'] = np.zeros(3, np.float32)
  bad = tmp_path / 'bad.npz'
  np.savez(bad, **flat)
  with c.unlocked():
    c.checkpoint = str(bad)
  with pytest.raises(CheckpointError, match='1 missing') as e:
    load_variables(c, model)
  assert dropped in str(e.value) and 'params/extra/kernel' in str(e.value)
  assert checkpoint.is_flax_npz(default_config.WEIGHTS)


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_load_without_arguments_is_the_default_model(capsys):
  seg = memvos_jax.load()
  assert 'default model' in capsys.readouterr().err
  assert seg.weights == default_config.WEIGHTS
  frames = np.stack([np.asarray(Image.open(p).convert('RGB')) for p in
                     sorted((REPO / 'examples' / 'bike_small' / 'JPEGImages' / 'bike').glob('*.jpg'))])
  first = np.asarray(Image.open(REPO / 'examples' / 'bike_small' / 'Annotations' / 'bike' /
                                '00000.png'))
  ids = seg.segment(frames, {0: first})
  assert ids.shape == frames.shape[:3]
  assert set(np.unique(ids[1:])) <= set(np.unique(first))


@pytest.mark.slow   # the default model on real clips: ~90 s
def test_default_model_beats_copying_the_first_mask_on_real_clips():
  """The five held-out DAVIS-2016 sequences (never trained on): J&F well above copying."""
  root = need_shared('data', 'davis2016_train')
  c = default_config.get_config()
  # At the validation's 240 px (the config segments at 360: over twice the CI time).
  clips = evaluation.heldout_davis(str(root), sampling.heldout_names(c), c.training.eval_size)
  model = build_model(c)
  seg = ClipSegmenter(stcn.FAMILY, model, load_variables(c, model), **c.inference.to_dict())
  validator = evaluation.Validator.__new__(evaluation.Validator)
  validator.clips, validator.seg = clips, seg
  ours = validator(seg.variables)
  copy = evaluation.copy_first_frame(clips)
  print(f'held-out J&F {ours["J&F"]:.3f} vs copy-first-mask {copy["J&F"]:.3f}')
  assert ours['J&F'] > copy['J&F'] + 0.2, (ours, copy)


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_segment_cli_uses_the_default_model_without_checkpoint(tmp_path):
  clip = REPO / 'examples' / 'bike_small'
  r = subprocess.run([sys.executable, '-m', 'memvos_jax', 'segment',
                      '--video', str(clip / 'JPEGImages' / 'bike'),
                      '--mask', str(clip / 'Annotations' / 'bike' / '00000.png'),
                      '--out', str(tmp_path / 'out'), '--chunk', '2'],
                     capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                     env=child_env())   # FAST_COMPILE: what is checked is the plumbing
  assert r.returncode == 0, r.stderr
  assert 'default model' in r.stderr and 'default_stcn.npz' in r.stderr
  assert len(list((tmp_path / 'out' / 'masks').glob('*.png'))) == 4


def test_unknown_model_name_lists_the_known_ones():
  with pytest.raises(InputError, match=r"unknown model \(known: .*default.*stcn"):
    memvos_jax.load('stcnn')
