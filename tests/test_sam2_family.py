"""SAM 2 through the shared drivers (family ``sam2``): eval.py, memvos_jax.load, ClipSegmenter.

The reference is the predictor run as the official VOS protocol runs it
(``tools/vos_inference.py``): per object, ``add_new_mask`` on its first
annotated frame and forward propagation from there; per frame the object
with the highest logit wins a pixel if that logit is > 0. Fixture weights
(``sam2_random``, needs ../shared) at image size 256, one compiled program
per driver shared by the tests (parity at the official 1024 is
test_sam2_parity.py).
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import CHILD_TIMEOUT_S, REPO, SHARED, child_env, need_shared, official_state
from memvos_jax import registry
from memvos_jax.models.sam2.predictor import Sam2Predictor, Sam2Settings

# Slow as a whole: SAM 2 on bike (eval.py in a subprocess ~30 s; the 256 px
# predictor and segmenter share compiles, ~35 s for the other two together).
pytestmark = [pytest.mark.slow, pytest.mark.fast_compile]   # ours against ours


@pytest.fixture(scope='module')
def fixture_state():
  return official_state('sam2_random')


@pytest.fixture(scope='module')
def bike():
  clip = need_shared('data', 'real_clips', 'JPEGImages', 'bike')
  frames = np.stack([np.asarray(Image.open(p).convert('RGB'))
                     for p in sorted(clip.glob('*.jpg'))])
  ann = np.asarray(Image.open(SHARED / 'data' / 'real_clips' / 'Annotations' / 'bike' /
                              '00000.png'))
  return frames, ann


def protocol_masks(pred, frames, given: dict[int, tuple[int, np.ndarray]]) -> np.ndarray:
  """The official VOS protocol with the predictor: given = {obj_id: (frame, bool mask)}."""
  t, h, w = frames.shape[:3]
  ids = sorted(given)
  logits = np.full((len(ids), t, h, w), -1024.0, np.float32)
  for i, oid in enumerate(ids):
    state = pred.init_state(frames)
    f, mask = given[oid]
    pred.add_new_mask(state, f, oid, mask)
    for frame, _, video in pred.propagate_in_video(state, start_frame_idx=f):
      logits[i, frame] = video[0, 0]
  best = np.argmax(logits, axis=0)
  return np.where(np.max(logits, axis=0) > 0, np.asarray(ids, np.uint8)[best], 0)


@pytest.fixture(scope='module')
def small(fixture_state):
  """(model, params, predictor, segmenter) at image size 256 (same parameters as 1024)."""
  from memvos_jax.api import Segmenter
  family = registry.get('sam2')
  model = family.build('tiny', image_size=256)
  params = family.convert(fixture_state, model, 'sam2_random')
  return model, params, Sam2Predictor(params, model, Sam2Settings(chunk=3)), Segmenter(model, params)


def test_eval_cli_bike_equals_predictor(fixture_state, small, bike, tmp_path):
  frames, ann = bike
  npz = tmp_path / 'sam2_random.npz'
  np.savez(npz, **fixture_state)
  out = tmp_path / 'out'
  cmd = [sys.executable, str(REPO / 'eval.py'), '--config', str(REPO / 'configs/sam2.py'),
         f'--config.checkpoint={npz}', f'--config.data.root={SHARED / "data" / "real_clips"}',
         '--config.data.clips=bike', '--config.network.image_size=256', f'--workdir={out}']
  r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
                     env=child_env())   # FAST_COMPILE, as the predictor it is compared with
  assert r.returncode == 0, r.stderr[-3000:]
  pngs = sorted((out / 'bike').glob('*.png'))
  assert [p.name for p in pngs] == [f'0000{i}.png' for i in range(4)]
  got = np.stack([np.asarray(Image.open(p)) for p in pngs])
  assert Image.open(pngs[1]).mode == 'P'

  ref = protocol_masks(small[2], frames, {o: (0, ann == o) for o in (1, 2)})
  for t in range(4):
    assert np.mean(got[t] == ref[t]) >= 0.999, t
    assert set(np.unique(got[t])) == {0, 1, 2}, t        # both objects tracked
  np.testing.assert_array_equal(got[0], ref[0])          # the given frame


def test_object_first_annotated_later(small, bike):
  """Object 2 first annotated on frame 2: no output before, tracked from there on its own."""
  _, _, pred, seg = small
  frames, ann = bike
  masks = {0: np.where(ann == 1, 1, 0).astype(np.uint8),
           2: np.where(ann == 2, 2, 0).astype(np.uint8)}
  got = seg.segment(frames, masks)
  ref = protocol_masks(pred, frames, {1: (0, ann == 1), 2: (2, ann == 2)})
  assert not (got[:2] == 2).any() and (got[2:] == 2).any() and (got == 1).any()
  for t in range(4):
    assert np.mean(got[t] == ref[t]) >= 0.999, t


def test_load_api_and_stream(small, bike, fixture_state, tmp_path):
  import memvos_jax
  npz = tmp_path / 'sam2_random.npz'
  np.savez(npz, **fixture_state)
  seg = memvos_jax.load('sam2', str(npz), max_obj_ptrs_in_encoder=16)
  assert seg.clip.family.name == 'sam2' and seg.model.image_size == 1024
  with pytest.raises(TypeError):
    memvos_jax.load('sam2', str(npz), mem_every=3)
  # Whole clip and stream run the same compiled step (small model for speed).
  seg = small[3]
  frames, ann = bike
  whole = seg.segment(frames[:3], {0: ann})
  session = seg.session(size=frames.shape[1:3], max_objects=2, memory_capacity=1)
  streamed = [session.step(frames[0], ann)] + [session.step(f) for f in frames[1:3]]
  # A stream does not know its length: object pointers are normalised as for
  # videos of >= 16 frames, the 3-frame clip by its length, as the official does.
  streamed = np.stack(streamed)
  np.testing.assert_array_equal(streamed[0], whole[0])
  assert np.mean(streamed == whole) >= 0.99 and set(np.unique(streamed[2])) == {0, 1, 2}
