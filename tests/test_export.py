"""The exported streaming step (``python -m memvos_jax export``) run by its runner alone.

The runner runs in a child process that never imports memvos_jax (checked) and
must give the masks the library's own streaming session gives, frame for frame:
the default model on a synthetic clip with memory eviction (capacity below the
frames memorised), in float32 (weights beside the program) and bfloat16 (weights
baked into it); AFB-URR and SAM 2.1-T (float32; SAM 2 at ``image_size`` 256) from
the official-format fixtures on the first frames of the real clip bike. SAM 2
agrees to float32 rounding only (see its test). One child process runs every
artifact, each while this process computes the session's masks (two compilations
at once, one per core). docs/export.md has what else was checked by hand.
"""

import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import memvos_jax
from memvos_jax import api, registry
from memvos_jax.apps import export as export_app
from memvos_jax.inference import dtypes

from conftest import CHILD_TIMEOUT_S, need_shared, official_npz

pytestmark = pytest.mark.slow   # each model compiled in the library and in the runner

SIZE = (64, 96)
FRAMES = 14
CAPACITY = 3      # memory every 3 frames: frames 0, 3, 6, 9, 12 -> evictions (0 pinned)


def _clip(seed=0):
  """A textured background and two squares moving over it; the first frame's mask."""
  rng = np.random.default_rng(seed)
  h, w = SIZE
  yy, xx = np.mgrid[:h, :w]
  base = (np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1)
          * 60 + 120 + rng.normal(0, 8, (h, w, 3))).clip(0, 255)
  frames, first = [], None
  for t in range(FRAMES):
    img = base.copy()
    ids = np.zeros(SIZE, np.uint8)
    for label, (y, x, colour) in ((3, (10 + t, 12 + 2 * t, (230, 40, 40))),
                                  (7, (34, 70 - 2 * t, (40, 40, 230)))):
      img[y:y + 16, x:x + 16] = colour
      ids[y:y + 16, x:x + 16] = label
    frames.append(img.astype(np.uint8))
    first = ids if first is None else first
  return np.stack(frames), first


# The runners' process: one per module (jax imported once), never importing memvos_jax.
# A job is a JSON line [clip .npz, artifact, output .npy]: it runs the artifact's own
# runner.py over the clip (the first frame with the first mask) and answers one JSON line.
_CHILD = r'''
import importlib.util, json, sys, traceback
import numpy as np
for line in sys.stdin:
  clip, art, out = json.loads(line)
  try:
    spec = importlib.util.spec_from_file_location('runner', f'{art}/runner.py')
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    z = np.load(clip)
    s = runner.Streamer(art)
    np.save(out, np.stack([s.step(f, z['first'] if t == 0 else None)
                           for t, f in enumerate(z['frames'])]))
    error = ''
  except Exception:
    error = traceback.format_exc()
  print(json.dumps({'error': error, 'memvos_jax': sorted(m for m in sys.modules
                                                         if m.startswith('memvos_jax'))}),
        flush=True)
'''


def _child_env() -> dict:
  """This process's environment with the oneDNN flag made explicit for the child.

  The runner adds ``dtypes.ONEDNN_FLAG`` for a bfloat16 step, as the library does
  before jax starts, but this process's jax has started (``runners`` makes sure)
  with the flag only if ``XLA_FLAGS`` holds it, and bf16 masks are identical only
  under the same kernels (docs/export.md).
  """
  flags = os.environ.get('XLA_FLAGS', '')
  name = dtypes.ONEDNN_FLAG.split('=')[0]
  if name not in flags:
    flags = f'{flags} {name}=false'.strip()
  return dict(os.environ, XLA_FLAGS=flags)


class _Runners:
  """The child process that runs the artifacts, in the background of this one."""

  def __init__(self):
    jax.devices()     # this process's XLA flags are fixed from here on: the child copies them
    self.proc = subprocess.Popen([sys.executable, '-c', _CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=_child_env())
    self.pending = []

  def start(self, tmp_path, frames, first, artifacts):
    """Queue each artifact over the clip; ``masks()`` waits for them (in order)."""
    for _ in self.pending:            # a failed test's jobs: their answers are dropped
      self.proc.stdout.readline()
    self.pending = []
    clip = tmp_path / 'clip.npz'
    np.savez(clip, frames=frames, first=first)
    for art in artifacts:
      out = tmp_path / f'got_{os.path.basename(art)}.npy'
      self.proc.stdin.write(json.dumps([str(clip), str(art), str(out)]) + '\n')
      self.pending.append(out)
    self.proc.stdin.flush()

  def masks(self) -> list[np.ndarray]:
    got = []
    while self.pending:
      out = self.pending.pop(0)          # popped first: a failed check leaves the rest queued
      line = self.proc.stdout.readline()
      assert line, f'the runners\' process ended (exit {self.proc.poll()})'
      reply = json.loads(line)
      assert not reply['error'], reply['error'][-3000:]
      assert reply['memvos_jax'] == []                   # nothing of memvos_jax imported
      got.append(np.load(out))
    return got

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=CHILD_TIMEOUT_S)


@pytest.fixture(scope='module')
def runners():
  r = _Runners()
  yield r
  r.close()


def _session_masks(seg, frames, first, objects, capacity):
  session = seg.session(frames.shape[1:3], max_objects=objects, memory_capacity=capacity)
  return np.stack([session.step(f, first if t == 0 else None) for t, f in enumerate(frames)])


def _same(got, want, what):
  assert got.shape == want.shape, (what, got.shape, want.shape)
  assert np.array_equal(got, want), (what, np.mean(got != want, axis=(1, 2)))


def test_exported_step_gives_the_session_masks(tmp_path, runners):
  """The default model, weights beside the program (``weights.npz``)."""
  frames, first = _clip()
  art = tmp_path / 'art'
  m = memvos_jax.export(str(art), size=SIZE, objects=2, capacity=CAPACITY)
  assert m['frame_size'] == list(SIZE) and m['memory_capacity'] == CAPACITY
  assert (art / 'weights.npz').exists() and (art / 'runner.py').exists()
  assert m['weights_sha256'] and not m['baked_weights']
  assert m['dtype'] == 'float32' and not m['xla_flags']
  runners.start(tmp_path, frames, first, [art])
  want = _session_masks(memvos_jax.load(quiet=True), frames, first, 2, CAPACITY)
  assert set(np.unique(want[1])) == {0, 3, 7}           # both objects tracked (64x96: 4x6 cells)
  _same(runners.masks()[0], want, 'float32')


@pytest.mark.filterwarnings('ignore:bfloat16 convolutions run without oneDNN')
def test_bf16_baked_export_gives_the_bf16_session_masks(tmp_path, capsys, runners):
  """``--dtype bfloat16 --bake``: the library's bf16 program with its bf16 weights as
  constants (the memory in bf16, stored as its uint16 bits), the same masks under the
  same XLA flags."""
  frames, first = _clip()
  art = tmp_path / 'art_bf16'
  art.mkdir()
  (art / 'weights.npz').write_bytes(b'stale')           # a baked export removes it
  assert export_app.main(['--out', str(art), '--size', f'{SIZE[0]}x{SIZE[1]}', '--objects', '2',
                          '--capacity', str(CAPACITY), '--dtype', 'bfloat16', '--bake']) == 0
  assert 'bfloat16' in capsys.readouterr().out
  m = json.loads((art / 'manifest.json').read_text())
  assert m['dtype'] == 'bfloat16' and m['xla_flags'] == dtypes.ONEDNN_FLAG
  assert m['baked_weights'] and not (art / 'weights.npz').exists()
  with np.load(art / 'state.npz') as z:
    assert np.dtype(np.uint16) in {z[k].dtype for k in z.files}      # the bf16 memory's bits
  runners.start(tmp_path, frames, first, [art])
  want = _session_masks(memvos_jax.load(quiet=True, dtype='bfloat16'), frames, first, 2,
                        CAPACITY)
  assert set(np.unique(want[1])) == {0, 3, 7}
  _same(runners.masks()[0], want, 'bf16 baked')


def _real_clip(name, size, frames=4):
  """The first ``frames`` frames of ../shared's real clip ``name`` and its first mask, at
  ``size`` (bilinear; the mask nearest)."""
  from PIL import Image
  root = need_shared('data', 'real_clips')
  paths = sorted(glob.glob(str(root / 'JPEGImages' / name / '*.jpg')))[:frames]
  hw = (size[1], size[0])
  images = np.stack([np.asarray(Image.open(p).convert('RGB').resize(hw, Image.BILINEAR))
                     for p in paths])
  first = np.asarray(Image.open(root / 'Annotations' / name / '00000.png').resize(
      hw, Image.NEAREST))
  return images, first


REAL_SIZE = (64, 112)      # bike (480x854) at a 16-multiple of its aspect


def test_afb_urr_export_gives_the_session_masks(tmp_path, tmp_path_factory, runners):
  """AFB-URR from its official-format fixture (loaded once: the export takes the loaded
  Segmenter), two memory frames: the banks fill and drop features by LFU."""
  frames, first = _real_clip('bike', REAL_SIZE)
  seg = memvos_jax.load('afb_urr', str(official_npz(tmp_path_factory, 'afb_urr_random')),
                        quiet=True)
  art = tmp_path / 'afb_urr'
  m = memvos_jax.export(str(art), model=seg, size=REAL_SIZE, objects=2, capacity=2)
  assert m['model'] == 'afb_urr' and m['dtype'] == 'float32' and m['weights_sha256']
  runners.start(tmp_path, frames, first, [art])
  want = _session_masks(seg, frames, first, 2, 2)
  assert all(set(np.unique(w)) == {0, 1, 2} for w in want)
  _same(runners.masks()[0], want, 'afb_urr')


def _sam2_segmenter(checkpoint, image_size):
  """``memvos_jax.load('sam2', checkpoint)`` with the network at another ``image_size``
  (the weights do not depend on it)."""
  config = registry.config('sam2')
  config.checkpoint, config.network.image_size = checkpoint, image_size
  net = registry.build_model(config)
  options = dict(config.inference.to_dict(), chunk=1)
  options.pop('max_objects')
  seg = api.Segmenter(net, registry.load_variables(config, net), family=registry.get('sam2'),
                      **options)
  seg.weights = checkpoint
  return seg


def test_sam2_export_gives_the_session_masks(tmp_path, tmp_path_factory, runners):
  """SAM 2.1-T from its official-format fixture, mask-prompted on frame 0, at image_size
  256 (the program of 1024 at a 16x cheaper size); one conditioning slot per object."""
  frames, first = _real_clip('bike', REAL_SIZE)
  seg = _sam2_segmenter(str(official_npz(tmp_path_factory, 'sam2_random')), 256)
  art = tmp_path / 'sam2'
  m = memvos_jax.export(str(art), model=seg, size=REAL_SIZE, objects=2, capacity=1)
  assert m['model'] == 'sam2' and m['dtype'] == 'float32' and m['weights_sha256']
  runners.start(tmp_path, frames, first, [art])
  want = _session_masks(seg, frames, first, 2, 1)
  assert all(set(np.unique(w)) == {0, 1, 2} for w in want)
  got = runners.masks()[0]
  # Bit for bit, as the other models. (With jax.nn.gelu's erfc polynomial, fused
  # multiply-adds under jit but multiply-then-add when exported, 1 pixel differed on
  # frames 2 and 3: models/sam2/common.gelu.)
  np.testing.assert_array_equal(got, want)


def test_bad_export_arguments_are_one_line(capsys, tmp_path):
  assert export_app.main(['--out', str(tmp_path / 'x'), '--platforms', 'cpu,gpu2']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'unknown platform(s) gpu2' in err[0], err
  # RPM-Net has no bf16 path in the library: refused before anything is loaded.
  assert export_app.main(['--out', str(tmp_path / 'x'), '--model', 'rpm',
                          '--dtype', 'bfloat16']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'float32 only' in err[0] and 'RPM-Net' in err[0], err
  assert not (tmp_path / 'x').exists()
  with pytest.raises(SystemExit):
    export_app.main(['--out', str(tmp_path / 'x'), '--size', '64by96'])
