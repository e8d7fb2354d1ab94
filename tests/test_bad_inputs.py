"""Bad inputs through the user-facing commands: one line naming the file or key, nothing lost.

Each table row is one bad input given to eval.py, the segment CLI
(``python -m memvos_jax segment``), train.py, the J&F evaluation
(``python -m memvos_jax evaluate``) or the Python API (``memvos_jax.load``).
A command must exit with the stated code and print the problem as one
``error:`` line naming the file or key, with no traceback; an API call must
raise the stated exception with a one-line message. The eval.py rows share
one run over a folder of good and bad clips (``eval_run``): every bad clip
fails alone, leaves ``<clip>.FAILED`` and no folder, and the good clips'
outputs equal those of a clean run. Everything is built in tmp_path with the
shipped default model (no ../shared).

Damaged weight files (``DAMAGED``: .npz, torch.save zip and legacy .pth, orbax
folders; cut short, overwritten, emptied, or no checkpoint at all) must give one
CheckpointError line naming the file: through ``memvos_jax.load`` for every
model and SAM 2's own builder in-process, and a few through eval.py, the segment
CLI and train.py (``DAMAGED_COMMANDS``).
"""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from memvos_jax.data.video_folder import davis_palette
import torch_files

from conftest import CHILD_TIMEOUT_S, REPO, child_env

pytestmark = pytest.mark.fast_compile   # errors and what is kept: plumbing

T, H, W = 4, 32, 48
FAST = ['--config.inference.size=0', '--config.inference.chunk=2']


# ------------------------------------------------------------------ helpers


def _run(*cmd, cwd=REPO):
  return subprocess.run([sys.executable, *map(str, cmd)], capture_output=True, text=True,
                        cwd=cwd, timeout=CHILD_TIMEOUT_S, env=child_env())   # FAST_COMPILE


def _eval(root, out, *extra):
  extra = list(extra)
  config = REPO / 'configs/default.py'
  if '--config' in extra:                   # the config file goes before its overrides
    i = extra.index('--config')
    config = extra.pop(i + 1)
    extra.pop(i)
  return _run(REPO / 'eval.py', '--config', config, f'--config.data.root={root}',
              f'--workdir={out}', *FAST, *extra)


def _segment(*args):
  return _run('-m', 'memvos_jax', 'segment', *args)


def one_error_line(stderr: str, *fragments: str) -> str:
  """The single ``error:`` line holding every fragment; no traceback anywhere."""
  assert 'Traceback' not in stderr, stderr[-3000:]
  lines = [l.strip() for l in re.split(r'[\r\n]', stderr) if l.strip().startswith('error:')]
  hits = [l for l in lines if all(f in l for f in fragments)]
  assert len(hits) == 1, f'{fragments} in {lines}\n{stderr[-3000:]}'
  return hits[0]


def _snapshot(folder) -> dict[str, str]:
  """relative path -> sha1 of every file under ``folder``."""
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob('*')) if p.is_file()}


def _save_ids(path, ids, mode='P'):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  im = Image.fromarray(np.asarray(ids, np.uint8), mode='L')
  if mode == 'P':
    im = im.convert('P')
    im.putpalette(davis_palette())
  im.save(path)


def _object(size=(H, W), value=1):
  m = np.zeros(size, np.uint8)
  m[6:20, 8:28] = value
  return m


def _frames(folder, n=T, size=(H, W)):
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(n):
    f = rng.integers(30, 90, size + (3,), dtype=np.uint8)
    f[6:20, 8 + i:28 + i] = (200, 60, 60)
    Image.fromarray(f).save(folder / f'{i:05d}.jpg')
  return folder


def _clip(root, name, n=T, first=None):
  """A clip folder (generic layout) with frame 0 annotated by ``first`` (default: one object)."""
  _frames(root / 'JPEGImages' / name, n)
  _save_ids(root / 'Annotations' / name / '00000.png', _object() if first is None else first)
  return root / 'JPEGImages' / name, root / 'Annotations' / name


def _antialiased():
  """A 0/255 mask drawn at 4x and downscaled: grey levels along the edges."""
  big = np.zeros((4 * H, 4 * W), np.uint8)
  big[26:78, 34:110] = 255
  return np.asarray(Image.fromarray(big).resize((W, H), Image.BILINEAR))


def _interpolated():
  """Objects 1 and 12 resized with interpolation: ids 2..11 along the edges."""
  big = np.zeros((4 * H, 4 * W), np.uint8)
  big[20:70, 20:90] = 1
  big[60:120, 100:180] = 12
  return np.asarray(Image.fromarray(big).resize((W, H), Image.BILINEAR))


def _unwritable_dir(tmp_path) -> pathlib.Path:
  """A folder where creating a file fails (chmod 555; as root, a read-only system folder)."""
  d = tmp_path / 'readonly'
  d.mkdir()
  d.chmod(0o555)
  for candidate in (d, pathlib.Path('/sys')):
    try:
      (candidate / '.probe').touch()
      (candidate / '.probe').unlink()
    except OSError:
      return candidate
  pytest.skip('no folder here refuses writes (running as root without a read-only /sys)')


# --------------------------------------------------- eval.py over many clips

# clip name, path fragment named by the error, problem fragment
EVAL_CLIPS = [
    ('empty', 'JPEGImages/empty', 'no frames (.jpg/.png) in clip folder'),
    ('blank_first', 'Annotations/blank_first/00000.png', 'the first annotation has no object'),
    ('no_first', 'Annotations/no_first/00000.png', 'no annotation for the first frame'),
    ('size_mismatch', 'Annotations/size_mismatch/00000.png',
     'annotation is 40x32 but frames are 48x32'),
    ('corrupt_frame', 'JPEGImages/corrupt_frame/00003.jpg', 'cannot read image'),
    ('corrupt_first', 'JPEGImages/corrupt_first/00000.jpg', 'cannot read image'),
    ('interpolated', 'Annotations/interpolated/00000.png',
     'looks like anti-aliasing or interpolated resizing'),
    ('rgb_colours', 'Annotations/rgb_colours/00000.png', 'colours that match no palette entry'),
    ('mode_16bit', 'Annotations/mode_16bit/00000.png', 'unsupported image mode'),
    ('stray_annotation', 'Annotations/stray_annotation/00009.png',
     'annotation has no matching frame'),
    ('out_is_file', 'out/out_is_file', 'output path exists and is not a folder'),
]
GOOD = ['good_a', 'good_b', 'stale']


@pytest.fixture(scope='module')
def eval_run(tmp_path_factory):
  base = tmp_path_factory.mktemp('eval')
  root, work, clean = base / 'data', base / 'out', base / 'clean'
  for name in GOOD:
    _clip(root, name)
  (root / 'JPEGImages' / 'empty').mkdir(parents=True)
  _clip(root, 'blank_first', first=np.zeros((H, W), np.uint8))
  _, ann = _clip(root, 'no_first')
  os.rename(ann / '00000.png', ann / '00001.png')
  _clip(root, 'size_mismatch', first=np.zeros((H, 40), np.uint8) + _object((H, 40)))
  img, _ = _clip(root, 'corrupt_frame')
  (img / '00003.jpg').write_bytes(b'not a jpeg')     # after frames 0-1 (chunk 2) are written
  img, _ = _clip(root, 'corrupt_first')
  (img / '00000.jpg').write_bytes(b'not a jpeg')
  _clip(root, 'interpolated', first=_interpolated())
  _, ann = _clip(root, 'rgb_colours')
  rgb = np.zeros((H, W, 3), np.uint8)
  rgb[6:20, 8:28] = (13, 200, 77)
  Image.fromarray(rgb).save(ann / '00000.png')
  _, ann = _clip(root, 'mode_16bit')
  Image.fromarray(_object().astype(np.uint16) * 300).save(ann / '00000.png')   # 16-bit
  _, ann = _clip(root, 'stray_annotation')
  _save_ids(ann / '00009.png', _object())
  _clip(root, 'out_is_file')
  _clip(root, 'antialiased', first=_antialiased())
  # What the workdir holds from earlier runs.
  work.mkdir()
  _save_ids(work / 'other' / '00000.png', _object(value=5))        # a clip not in this run
  (work / 'corrupt_first').mkdir()
  _save_ids(work / 'corrupt_first' / '00000.png', _object(value=2))  # an earlier good result
  (work / 'out_is_file').write_text('a file where the clip folder would go\n')
  (work / 'stale.FAILED').write_text('an earlier failure\n')
  (work / '.stale.partial-0123').mkdir()                          # left by a killed run
  (work / '.stale.partial-0123' / '00000.png').write_bytes(b'partial')
  before = _snapshot(work)
  r = _eval(root, work)
  r_clean = _eval(root, clean, f'--config.data.clips={",".join(GOOD)}')
  return types.SimpleNamespace(r=r, clean=r_clean, work=work, clean_dir=clean, before=before)


@pytest.mark.parametrize('clip, where, problem', EVAL_CLIPS, ids=[c[0] for c in EVAL_CLIPS])
def test_eval_bad_clip_fails_alone(eval_run, clip, where, problem):
  line = one_error_line(eval_run.r.stderr, where, problem)
  marker = eval_run.work / f'{clip}.FAILED'
  assert marker.read_text().splitlines()[0] == line[len('error: '):]
  if clip not in ('corrupt_first', 'out_is_file'):     # those held something before the run
    assert not (eval_run.work / clip).exists()


def test_eval_exit_code_and_summary(eval_run):
  assert eval_run.r.returncode == 1
  (summary,) = [l for l in eval_run.r.stderr.splitlines() if 'clip(s) failed' in l]
  assert summary.startswith(f'{len(EVAL_CLIPS)} clip(s) failed')
  assert sorted(summary.split(': ')[-1].split(', ')) == sorted(c[0] for c in EVAL_CLIPS)


def test_eval_good_clips_equal_a_clean_run(eval_run):
  assert eval_run.clean.returncode == 0, eval_run.clean.stderr[-3000:]
  for name in GOOD:
    got = _snapshot(eval_run.work / name)
    assert len(got) == T
    assert got == _snapshot(eval_run.clean_dir / name)


def test_eval_keeps_what_was_there(eval_run):
  after = _snapshot(eval_run.work)
  for path in ('other/00000.png', 'corrupt_first/00000.png', 'out_is_file'):
    assert after[path] == eval_run.before[path]
  assert 'earlier run' in (eval_run.work / 'corrupt_first.FAILED').read_text()
  assert not (eval_run.work / 'stale.FAILED').exists()       # the clip succeeded this time
  assert not [p for p in os.listdir(eval_run.work) if '.partial-' in p]


def test_eval_antialiased_mask_is_one_object_with_a_warning(eval_run):
  lines = [l.strip() for l in re.split(r'[\r\n]', eval_run.r.stderr)]
  warnings = [l for l in lines
              if l.startswith('warning:') and 'Annotations/antialiased/00000.png' in l]
  assert len(warnings) == 1 and 'anti-aliasing grey levels' in warnings[0]
  ids = np.array(Image.open(eval_run.work / 'antialiased' / '00000.png'))
  assert set(np.unique(ids).tolist()) == {0, 1}
  assert len(os.listdir(eval_run.work / 'antialiased')) == T


# ------------------------------------------- eval.py and train.py arguments


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('small')
  _clip(root, 'good')
  return root


@pytest.fixture(scope='module')
def torch_state(tmp_path_factory, seg):
  """The default network's weights written in the official STCN (torch) naming."""
  import flax
  from memvos_jax.models.stcn import convert as stcn
  from memvos_jax.convert.common import torch_name
  state = {}
  for path, v in flax.traverse_util.flatten_dict(seg.variables).items():
    v = np.asarray(v)
    if path[-1] == 'kernel':
      v = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T
    state[torch_name(path, stcn.RENAMES)] = v
  np.testing.assert_array_equal(             # the names map back onto every leaf
      flax.traverse_util.flatten_dict(stcn.convert(state, seg.model))[
          ('params', 'decoder', 'pred', 'kernel')],
      np.asarray(seg.variables['params']['decoder']['pred']['kernel']))
  folder = tmp_path_factory.mktemp('ckpt')
  missing = dict(state)
  del missing['decoder.compress.conv2.weight']
  np.savez(folder / 'missing.npz', **missing)
  shaped = dict(state)
  shaped['key_comp.bias'] = np.zeros(7, np.float32)
  np.savez(folder / 'shaped.npz', **shaped)
  return types.SimpleNamespace(state=state, missing=folder / 'missing.npz',
                               shaped=folder / 'shaped.npz')


def _workdir_file(tmp_path, root, ckpt):
  (tmp_path / 'out').write_text('x')
  return ['eval', root, tmp_path / 'out'], 1, ['out: output folder is a file']


def _workdir_readonly(tmp_path, root, ckpt):
  return ['eval', root, _unwritable_dir(tmp_path)], 1, ['output folder is not writable']


def _unknown_key(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', '--config.inference.mem_evry=3'], 2,
          ['--config.inference.mem_evry=3', "unknown config key 'mem_evry'", "'mem_every'"])


def _unknown_variant(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', '--config', REPO / 'configs/default.py:bogus'], 2,
          ['configs/default.py:bogus', "unknown variant 'bogus'"])


def _missing_config(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', '--config', tmp_path / 'nope.py'], 2,
          ['nope.py', 'cannot load the config file'])


def _bad_value(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', '--config.inference.chunk=many'], 2,
          ['--config.inference.chunk=many', 'invalid literal'])


def _missing_root(tmp_path, root, ckpt):
  return ['eval', tmp_path / 'nodata', tmp_path / 'out'], 1, ['nodata: data root does not exist']


def _unknown_clip(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', '--config.data.clips=good,bkie'], 1,
          ['JPEGImages/bkie', 'clip folder does not exist'])


def _missing_checkpoint_file(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', f'--config.checkpoint={tmp_path}/none.pth'], 1,
          ['none.pth', 'checkpoint file does not exist'])


def _checkpoint_missing_key(tmp_path, root, ckpt):
  return (['eval', root, tmp_path / 'out', f'--config.checkpoint={ckpt.missing}'], 1,
          ['missing.npz', '1 missing: decoder.compress.conv2.weight'])


def _train_unknown_key(tmp_path, root, ckpt):
  return (['train', '--config.training.batch_sise=2', f'--workdir={tmp_path}/run'], 2,
          ['--config.training.batch_sise=2', "unknown config key 'batch_sise'", "'batch_size'"])


def _train_unknown_variant(tmp_path, root, ckpt):
  return (['train', '--config', f'{REPO}/configs/stcn.py:tiyn', f'--workdir={tmp_path}/run'], 2,
          ['configs/stcn.py:tiyn', "unknown variant 'tiyn'"])


def _train_workdir_file(tmp_path, root, ckpt):
  (tmp_path / 'run').write_text('x')
  return (['train', '--config', f'{REPO}/configs/stcn.py:tiny', f'--workdir={tmp_path}/run'], 2,
          ['run: output folder is a file'])


def _train_missing_data(tmp_path, root, ckpt):
  return (['train', '--config', f'{REPO}/configs/stcn.py:tiny', f'--workdir={tmp_path}/run',
           f'--config.data.davis_root={tmp_path}/davis'], 2,
          ['config.data.davis_root', 'davis does not exist'])


ARG_CASES = {f.__name__.lstrip('_'): f for f in (
    _workdir_file, _workdir_readonly, _unknown_key, _unknown_variant, _missing_config,
    _bad_value, _missing_root, _unknown_clip, _missing_checkpoint_file,
    _checkpoint_missing_key, _train_unknown_key, _train_unknown_variant,
    _train_workdir_file, _train_missing_data)}


@pytest.mark.parametrize('case', list(ARG_CASES))
def test_eval_and_train_arguments(tmp_path, small_root, torch_state, case):
  args, code, fragments = ARG_CASES[case](tmp_path, small_root, torch_state)
  if args[0] == 'eval':
    _, root, out, *extra = args
    r = _eval(root, out, *extra)
  else:
    r = _run(REPO / 'train.py', *args[1:])
  assert r.returncode == code, r.stderr[-3000:]
  one_error_line(r.stderr, *fragments)
  assert not (tmp_path / 'out').is_dir() or not os.listdir(tmp_path / 'out')


# ------------------------------------------------------------- segment CLI


@pytest.fixture(scope='module')
def cli_inputs(tmp_path_factory):
  d = tmp_path_factory.mktemp('cli')
  _frames(d / 'frames', 6, (64, 96))
  _save_ids(d / 'mask.png', _object((64, 96)))
  _save_ids(d / 'empty.png', np.zeros((64, 96), np.uint8))
  _save_ids(d / 'small.png', _object((32, 96)))
  Image.fromarray(np.zeros((64, 96, 3), np.uint8) + 255).save(d / 'rgb.png')
  (d / 'file').write_text('x')
  from memvos_jax.apps import visualize
  with visualize.OverlayVideoWriter(d / 'clip.mp4', 24.0) as w:   # moov box at the end
    for i in range(12):
      w.write(np.full((64, 96, 3), 20 * i, np.uint8))
  data = (d / 'clip.mp4').read_bytes()
  (d / 'cut.mp4').write_bytes(data[:len(data) // 2])
  return d


# name: (args with {d} for the inputs folder, path fragment, problem fragment)
CLI_CASES = {
    'out_is_file': (['--video', '{d}/frames', '--mask', '{d}/mask.png', '--out', '{d}/file'],
                    '/file', 'output folder is a file'),
    'mask_frame_outside': (['--video', '{d}/frames', '--mask', '9:{d}/mask.png'],
                           'mask.png', 'mask frame 9 is outside the video (0..5)'),
    'mask_no_object': (['--video', '{d}/frames', '--mask', '{d}/empty.png'],
                       'empty.png', 'mask has no object'),
    'mask_size': (['--video', '{d}/frames', '--mask', '{d}/small.png'],
                  'small.png', 'mask is 96x32 but the video is 96x64'),
    'mask_rgb': (['--video', '{d}/frames', '--mask', '{d}/rgb.png'],
                 'rgb.png', 'not a palette or greyscale-with-ids'),
    'mask_twice': (['--video', '{d}/frames', '--mask', '{d}/mask.png', '--mask', '0:{d}/mask.png'],
                   'mask.png', 'a second mask for frame 0'),
    'mask_missing': (['--video', '{d}/frames', '--mask', '{d}/nope.png'],
                     'nope.png', 'cannot read mask'),
    'video_missing': (['--video', '{d}/nope.mp4', '--mask', '{d}/mask.png'],
                      'nope.mp4', 'file does not exist'),
    'video_cut': (['--video', '{d}/cut.mp4', '--mask', '{d}/mask.png'],
                  'cut.mp4', 'so it was cut short'),
    'fps_zero': (['--video', '{d}/frames', '--mask', '{d}/mask.png', '--fps', '0'],
                 '--fps', 'must be > 0'),
    'unknown_model': (['--video', '{d}/frames', '--mask', '{d}/mask.png', '--model', 'stcm'],
                      "model 'stcm'", 'unknown model (known: '),
}


@pytest.mark.parametrize('case', list(CLI_CASES))
def test_segment_cli(tmp_path, cli_inputs, case):
  args, where, problem = CLI_CASES[case]
  args = [a.format(d=cli_inputs) for a in args]
  if '--out' not in args:
    args += ['--out', tmp_path / 'out']
  r = _segment(*args)
  assert r.returncode == 1, r.stderr[-3000:]
  one_error_line(r.stderr, where, problem)
  assert not (tmp_path / 'out').exists()
  assert 'memvos_jax: default model' not in r.stderr      # refused before loading the model


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_segment_cli_failing_mid_video_keeps_out(tmp_path, cli_inputs):
  """A video that ends early fails after frames were segmented: --out is left as it was."""
  import av
  video = tmp_path / 'fast.mp4'
  with av.open(str(video), 'w', options={'movflags': 'faststart'}) as c:
    s = c.add_stream('libx264' if 'libx264' in av.codecs_available else 'mpeg4', rate=24)
    s.width, s.height, s.pix_fmt = 96, 64, 'yuv420p'
    rng = np.random.default_rng(0)
    for _ in range(24):
      f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8),
                                     format='rgb24')
      for p in s.encode(f):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  data = video.read_bytes()
  video.write_bytes(data[:int(len(data) * 0.6)])
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'notes.txt').write_text('mine\n')
  _save_ids(out / 'masks' / '00000.png', _object((64, 96), 3))      # an earlier run's result
  before = _snapshot(out)
  r = _segment('--video', video, '--mask', cli_inputs / 'mask.png', '--out', out,
               '--size', '0', '--chunk', '4')
  assert r.returncode == 1
  line = one_error_line(r.stderr, 'fast.mp4', 'so it was probably cut short')
  assert re.search(r'ends after frame \d+ \(\d+ of the 24 frames', line)
  assert _snapshot(out) == before
  assert (tmp_path / 'out.FAILED').read_text().splitlines()[0] == line[len('error: '):]
  assert not [p for p in os.listdir(tmp_path) if '.partial-' in p]


def test_segment_cli_readonly_out(tmp_path, cli_inputs):
  r = _segment('--video', cli_inputs / 'frames', '--mask', cli_inputs / 'mask.png',
               '--out', _unwritable_dir(tmp_path) / 'out')
  assert r.returncode == 1
  one_error_line(r.stderr, 'output folder is not writable')


# ------------------------------------------------------- J&F evaluation CLI


@pytest.fixture(scope='module')
def davis_gt(tmp_path_factory):
  d = tmp_path_factory.mktemp('davis')
  for i in range(3):
    _save_ids(d / 'gt' / 'Annotations' / '480p' / 'seq' / f'{i:05d}.png', _object())
  (d / 'gt' / 'ImageSets' / '2017').mkdir(parents=True)
  (d / 'gt' / 'ImageSets' / '2017' / 'val.txt').write_text('seq\n')
  return d / 'gt'


def _results(tmp_path, frames=(0, 1, 2), ids=None, size=(H, W)):
  for i in frames:
    _save_ids(tmp_path / 'res' / 'seq' / f'{i:05d}.png', _object(size) if ids is None else ids)
  return tmp_path / 'res'


EVALUATE_CASES = {
    'results_missing': (lambda t: t / 'nores', [], 'nores', 'results folder not found'),
    'sequence_missing': (lambda t: (t / 'res').mkdir() or t / 'res', [], 'res/seq',
                         'sequence seq: results folder not found'),
    'frame_missing': (lambda t: _results(t, frames=(0, 2)), [], 'seq/00001.png',
                      'result not found'),
    'frame_size': (lambda t: _results(t, size=(H, 40)), [], 'seq/00001.png',
                   'result is 40x32 but the annotation is 48x32'),
    'unknown_id': (lambda t: _results(t, ids=_object(value=9)), [], 'seq/00001.png',
                   'object id(s) [9] not in the ground truth'),
    'set_missing': (lambda t: _results(t), ['--set', 'tset'], 'tset.txt',
                    "sequence list for set 'tset' not found"),
}


@pytest.mark.parametrize('case', list(EVALUATE_CASES))
def test_evaluate_cli(tmp_path, davis_gt, case):
  make, extra, where, problem = EVALUATE_CASES[case]
  results = make(tmp_path)
  r = _run('-m', 'memvos_jax', 'evaluate', '--davis_path', davis_gt, '--results_path', results,
           *extra)
  assert r.returncode == 1, r.stderr[-3000:]
  one_error_line(r.stderr, where, problem)
  assert not list(tmp_path.rglob('*.csv'))               # nothing written on failure


# ---------------------------------------------------------------- Python API


@pytest.fixture(scope='module')
def seg():
  import memvos_jax
  return memvos_jax.load(quiet=True, size=0)


def _video():
  rng = np.random.default_rng(1)
  frames = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
  return frames, {0: _object()}


def _load(*args, **kwargs):
  import memvos_jax
  return memvos_jax.load(*args, quiet=True, **kwargs)


def _session_step(seg, frame=None, mask=None):
  frames, _ = _video()
  return seg.session((H, W), max_objects=2).step(frames[0] if frame is None else frame, mask)


# name: (call(seg, ckpt), exception, fragments of the message)
API_CASES = {
    'frames_float_0_255': (lambda s, c: s.segment(_video()[0].astype(np.float32), _video()[1]),
                           'InputError', ['frames: float32 values in [', 'floats in [0, 1]']),
    'frames_grey': (lambda s, c: s.segment(_video()[0][..., 0], _video()[1]),
                    'InputError', ['frames: shape (4, 32, 48)', '[T, H, W, 3]']),
    'frames_int_range': (lambda s, c: s.segment(_video()[0].astype(np.int32) * 4, _video()[1]),
                         'InputError', ['frames: int32 values in [', 'expected 0..255']),
    'mask_shape': (lambda s, c: s.segment(_video()[0], {0: _object((H, 40))}),
                   'InputError', ['masks[0]: shape (32, 40) but the frames are 32x48']),
    'mask_rgb': (lambda s, c: s.segment(_video()[0], {0: np.zeros((H, W, 3), np.uint8)}),
                 'InputError', ['masks[0]: shape (32, 48, 3)', 'RGB image']),
    'mask_frame_outside': (lambda s, c: s.segment(_video()[0], {7: _object()}),
                           'InputError', ['masks[7]: frame 7 is outside the clip (0..3)']),
    'mask_no_object': (lambda s, c: s.segment(_video()[0], {0: np.zeros((H, W), np.uint8)}),
                       'InputError', ['masks: no object in any mask']),
    'mask_probabilities': (lambda s, c: s.segment(_video()[0], {0: _object() * 0.7}),
                           'InputError', ['masks[0]: float64 values that are not whole numbers']),
    'mask_ids_range': (lambda s, c: s.segment(_video()[0], {0: _object().astype(int) * 300}),
                       'InputError', ['masks[0]: ids in [0, 300], expected 0..255']),
    'masks_not_dict': (lambda s, c: s.segment(_video()[0], _object()),
                       'InputError', ['masks: a ndarray, expected a dict']),
    'session_mask_shape': (lambda s, c: _session_step(s, mask=_object((H, 40))),
                           'InputError', ['mask of frame 0: shape (32, 40) but the frames are 32x48']),
    'session_frame_float_range': (
        lambda s, c: _session_step(s, frame=_video()[0][0].astype(np.float64) - 300),
        'InputError', ['frame 0: float64 values in [-300', 'floats in [0, 1]']),
    'unknown_model': (lambda s, c: _load('stcm'), 'InputError',
                      ["model 'stcm': unknown model (known: ", 'stcn']),
    'unknown_setting': (lambda s, c: _load(mem_evry=3), 'TypeError', ["['mem_evry']", 'mem_every']),
    'checkpoint_missing_key': (lambda s, c: _load('default', str(c.missing)), 'CheckpointError',
                               ['missing.npz', '1 missing: decoder.compress.conv2.weight']),
    'checkpoint_mis_shaped_key': (lambda s, c: _load('default', str(c.shaped)), 'CheckpointError',
                                  ['shaped.npz', '1 mis-shaped: key_comp.bias (7,)']),
}


@pytest.mark.parametrize('case', list(API_CASES))
def test_api(seg, torch_state, case):
  call, kind, fragments = API_CASES[case]
  with pytest.raises(Exception) as e:
    call(seg, torch_state)
  assert type(e.value).__name__ == kind
  message = str(e.value)
  assert '\n' not in message and 'params/' not in message
  for f in fragments:
    assert f in message, message
  assert 'missing' not in message or case != 'checkpoint_mis_shaped_key'


@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
def test_api_float_frames_in_0_1_equal_uint8(seg):
  frames, masks = _video()
  as_float = frames.astype(np.float32) / 255
  np.testing.assert_array_equal(seg.segment(as_float, masks), seg.segment(frames, masks))
  session = seg.session((H, W), max_objects=1)
  np.testing.assert_array_equal(session.step(as_float[0], masks[0]), masks[0])


# ------------------------------------------------------ damaged weight files


def _cut(path, keep):
  """Keep the first ``keep`` bytes (a fraction, or a negative count cut from the end)."""
  data = pathlib.Path(path).read_bytes()
  path.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
  return path


def _overwrite(path, at, garbage=b'\xde\xad\xbe\xef' * 4):
  """Overwrite bytes from ``at`` (a fraction of the size, or an offset) with garbage."""
  data = bytearray(pathlib.Path(path).read_bytes())
  i = int(len(data) * at) if isinstance(at, float) else at
  data[i:i + len(garbage)] = garbage
  path.write_bytes(bytes(data))
  return path


def _flax_npz(path, compressed=False):
  """A Flax-format .npz (``save_npz`` names): a 40 KB kernel, then a small entry."""
  arrays = {'params/a/kernel': np.random.default_rng(0).standard_normal((100, 100), np.float32),
            'batch_stats/a/mean': np.zeros(8, np.float32)}
  (np.savez_compressed if compressed else np.savez)(path, **arrays)
  return path


def _npy_header(path, member='params/a/kernel.npy'):
  """Garbage over a member's .npy header (its magic string and dict)."""
  with zipfile.ZipFile(path) as zf:
    info = zf.getinfo(member)
  data = path.read_bytes()
  name_len, extra_len = np.frombuffer(data, '<u2', 2, info.header_offset + 26)
  return _overwrite(path, info.header_offset + 30 + int(name_len) + int(extra_len))


def _file(path, data: bytes):
  path.write_bytes(data)
  return path


def _torch_zip(path):
  torch_files.write_torch_zip(path, {'w': np.ones((100, 100), np.float32),
                                     'b': np.zeros(3, np.float32)})
  return path


def _legacy(path):
  torch_files.legacy_state(path)
  return path


def _orbax(path):
  """An orbax variables folder, as ``python -m memvos_jax.convert`` writes one."""
  from memvos_jax.convert import checkpoint
  return pathlib.Path(checkpoint.save_variables(str(path), {
      'params': {'a': {'kernel': np.random.default_rng(0).standard_normal((100, 100),
                                                                         np.float32)}},
      'batch_stats': {'a': {'mean': np.zeros(8, np.float32)}}}))


def _orbax_data_deleted(path):
  shutil.rmtree(_orbax(path) / 'd')          # the folder of the array data files
  return path


def _orbax_data_cut(path):
  _cut(max((p for p in _orbax(path).rglob('*') if p.is_file()), key=lambda p: p.stat().st_size),
       0.5)                                   # the largest file: the kernel's data
  return path


def _orbax_manifest_deleted(path):
  (_orbax(path) / 'manifest.ocdbt').unlink()
  return path


def _not_orbax(path):
  path.mkdir()
  (path / 'notes.txt').write_text('not a checkpoint\n')
  return path


def _step_folder(path):
  """A training run's ``checkpoints/<step>`` folder (its ``variables`` is the checkpoint)."""
  _orbax(path / 'variables')
  return path


# name: (make(path) -> the damaged file or folder, file name, problem fragments)
DAMAGED = {
    'npz_half': (lambda p: _cut(_flax_npz(p), 0.5), 'w.npz',
                 ['damaged checkpoint: truncated .npz', 'cut short']),
    'npz_tail': (lambda p: _cut(_flax_npz(p), -3), 'w.npz',
                 ['damaged checkpoint: truncated .npz']),
    'npz_crc': (lambda p: _overwrite(_flax_npz(p), 0.5), 'w.npz',
                ["damaged checkpoint: .npz entry 'params/a/kernel' cannot be read", 'CRC']),
    'npz_deflated': (lambda p: _overwrite(_flax_npz(p, compressed=True), 0.5), 'w.npz',
                     ["damaged checkpoint: .npz entry 'params/a/kernel' cannot be read"]),
    'npz_npy_header': (lambda p: _npy_header(_flax_npz(p)), 'w.npz',
                       ["damaged checkpoint: .npz entry 'params/a/kernel' cannot be read"]),
    'npz_empty': (lambda p: _file(p, b''), 'w.npz',
                  ['damaged checkpoint: the file is empty']),
    'pth_empty': (lambda p: _file(p, b''), 'w.pth',
                  ['damaged checkpoint: the file is empty']),
    'pth_zip_half': (lambda p: _cut(_torch_zip(p), 0.5), 'w.pth',
                     ['damaged checkpoint: truncated torch.save zip', 'cut short']),
    'pth_zip_member': (lambda p: _overwrite(_torch_zip(p), 0.5), 'w.pth',
                       ['damaged checkpoint: record archive/data/0 cannot be read', 'CRC']),
    'pth_legacy_cut': (lambda p: _cut(_legacy(p), -3), 'w.pth',
                       ['damaged checkpoint: truncated legacy torch.save file']),
    'pth_legacy_half': (lambda p: _cut(_legacy(p), 0.5), 'w.pth',
                        ['damaged checkpoint: legacy torch.save file']),
    'pth_text': (lambda p: _file(p, b'a text file, renamed\n'), 'w.pth',
                 ['not a checkpoint: neither the zip nor the legacy format']),
    'orbax_metadata_cut': (lambda p: _cut(_orbax(p) / '_METADATA', 0.5).parent, 'ckpt',
                           ['damaged checkpoint: its _METADATA is not valid']),
    'orbax_data_deleted': (_orbax_data_deleted, 'ckpt',
                           ['damaged checkpoint: d/', 'is missing']),
    'orbax_data_cut': (_orbax_data_cut, 'ckpt',
                       ['damaged checkpoint: ', 'is cut short']),
    'orbax_manifest_deleted': (_orbax_manifest_deleted, 'ckpt',
                               ['damaged checkpoint: its manifest.ocdbt', 'is missing']),
    'orbax_not_a_checkpoint': (_not_orbax, 'ckpt',
                               ["not a checkpoint: a folder without orbax's _METADATA"]),
    'orbax_step_folder': (_step_folder, 'ckpt',
                          ['not a checkpoint: a training checkpoint step folder',
                           'ckpt/variables']),
}


@pytest.fixture(scope='module')
def damaged(tmp_path_factory):
  """case -> its damaged file or folder (each in its own folder)."""
  base = tmp_path_factory.mktemp('damaged')
  out = {}
  for case, (make, name, _) in DAMAGED.items():
    (base / case).mkdir()
    out[case] = make(base / case / name)
    assert out[case] == base / case / name
  return out


def _damage_message(e, case, path):
  message = str(e.value)
  assert type(e.value).__name__ == 'CheckpointError', message
  assert '\n' not in message and message.startswith(f'{path}: '), message
  for f in DAMAGED[case][2]:
    assert f in message, message
  return message


@pytest.mark.parametrize('case', list(DAMAGED))
def test_damaged_checkpoint_api(damaged, case):
  """``memvos_jax.load(model, path)``: one line naming the file (no variables are built)."""
  with pytest.raises(Exception) as e:
    _load('default', str(damaged[case]))
  _damage_message(e, case, damaged[case])


MODELS = ['afb_urr', 'rpm', 'sam2', 'stcn', 'stm']


@pytest.mark.parametrize('case', ['pth_zip_member', 'pth_legacy_cut', 'orbax_data_cut'])
@pytest.mark.parametrize('model', MODELS)
def test_damaged_checkpoint_any_model(damaged, model, case):
  with pytest.raises(Exception) as e:
    _load(model, str(damaged[case]))
  _damage_message(e, case, damaged[case])


@pytest.mark.parametrize('case', ['pth_zip_half', 'npz_crc', 'orbax_metadata_cut'])
def test_damaged_checkpoint_sam2_builder(damaged, case):
  """SAM 2's own loader (``build_sam2_video_predictor``, official import path)."""
  from memvos_jax.sam2 import build_sam2_video_predictor
  with pytest.raises(Exception) as e:
    build_sam2_video_predictor('configs/sam2.1/sam2.1_hiera_t.yaml', damaged[case])
  _damage_message(e, case, damaged[case])


# name: (command, case, exit code); the commands build no network before the check
DAMAGED_COMMANDS = {
    'eval_npz_half': ('eval', 'npz_half', 1),
    'eval_orbax_data_cut': ('eval', 'orbax_data_cut', 1),
    'segment_pth_zip_member': ('segment', 'pth_zip_member', 1),
    'train_pth_legacy_cut': ('train', 'pth_legacy_cut', 2),
}


@pytest.mark.parametrize('name', list(DAMAGED_COMMANDS))
def test_damaged_checkpoint_commands(tmp_path, damaged, small_root, cli_inputs, name):
  command, case, code = DAMAGED_COMMANDS[name]
  path = damaged[case]
  if command == 'eval':
    r = _eval(small_root, tmp_path / 'out', f'--config.checkpoint={path}')
  elif command == 'segment':
    r = _segment('--video', cli_inputs / 'frames', '--mask', cli_inputs / 'mask.png',
                 '--checkpoint', path, '--out', tmp_path / 'out')
  else:
    r = _run(REPO / 'train.py', '--config', f'{REPO}/configs/stcn.py:tiny',
             f'--config.checkpoint={path}', f'--workdir={tmp_path}/run')
    assert 'model:' not in r.stdout              # stopped before the train state was built
  assert r.returncode == code, r.stderr[-3000:]
  line = one_error_line(r.stderr, str(path), *DAMAGED[case][2])
  assert not (tmp_path / 'out').is_dir() or not os.listdir(tmp_path / 'out')
  if command == 'segment':
    assert (tmp_path / 'out.FAILED').read_text().splitlines()[0] == line[len('error: '):]
