"""The official SAM 2 video-predictor API on memvos_jax (``memvos_jax.sam2``).

The notebook tests write out the cells of facebookresearch/sam2
``notebooks/video_predictor_example.ipynb`` with its calls and keywords
(build, ``init_state`` on a JPEG folder, clicks, a box, several objects,
``propagate_in_video``, ``reset_state``, its ``(out_mask_logits[i] >
0.0).cpu().numpy()``), then ``add_new_mask``, ``remove_object`` and a
reverse propagation from ``start_frame_idx`` over ``max_frame_num_to_track``.
Every output must equal what ``Sam2Predictor`` gives for the same prompts
called positionally on the clip's frames as an array (a second state on the
same predictor, so no second compile). Weights: the sam2_random fixture
(needs ../shared); clip: bike, 4 frames of 480x854, so the notebook's
refinement on frame 150 happens on frame 2. The notebook builds at 1024;
the runs add ``++model.image_size=256`` (same weights, about 16x cheaper),
and the 1024 build is checked for its network, settings and weights only.
"""

import inspect

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import need_shared, official_npz, official_state
from memvos_jax.errors import InputError
from memvos_jax.models.sam2 import SAM2, trunk_items
from memvos_jax.models.sam2.convert import convert
from memvos_jax.models.sam2.video import resize_frame
from memvos_jax.sam2 import build_sam2_video_predictor, config_size
from memvos_jax.sam2_predictor import MaskLogits, Sam2Predictor, Sam2Settings

pytestmark = pytest.mark.slow   # SAM 2 at 1024 px, the notebook's examples: ~1 min on 2 CPU cores

H, W = 480, 854
model_cfg = 'configs/sam2.1/sam2.1_hiera_t.yaml'
device = 'cpu'
EMPTY = inspect.Parameter.empty

# Parameter names and defaults of sam2/sam2_video_predictor.py (2b90b9f5).
OFFICIAL_METHODS = {
    'init_state': dict(video_path=EMPTY, offload_video_to_cpu=False, offload_state_to_cpu=False,
                       async_loading_frames=False),
    'add_new_points_or_box': dict(inference_state=EMPTY, frame_idx=EMPTY, obj_id=EMPTY,
                                  points=None, labels=None, clear_old_points=True,
                                  normalize_coords=True, box=None),
    'add_new_mask': dict(inference_state=EMPTY, frame_idx=EMPTY, obj_id=EMPTY, mask=EMPTY),
    'propagate_in_video': dict(inference_state=EMPTY, start_frame_idx=None,
                               max_frame_num_to_track=None, reverse=False),
    'clear_all_prompts_in_frame': dict(inference_state=EMPTY, frame_idx=EMPTY, obj_id=EMPTY,
                                       need_output=True),
    'reset_state': dict(inference_state=EMPTY),
    'remove_object': dict(inference_state=EMPTY, obj_id=EMPTY, strict=False, need_output=True),
}


def _params(fn) -> dict:
  return {k: p.default for k, p in inspect.signature(fn).parameters.items()
          if k != 'self' and p.kind is p.POSITIONAL_OR_KEYWORD}


def test_method_signatures_are_the_official_ones():
  for name, official in OFFICIAL_METHODS.items():
    assert _params(getattr(Sam2Predictor, name)) == official, name
  builder = _params(build_sam2_video_predictor)
  assert list(builder) == ['config_file', 'ckpt_path', 'device', 'mode', 'hydra_overrides_extra',
                           'apply_postprocessing', 'vos_optimized']
  assert (builder['ckpt_path'], builder['mode'], builder['apply_postprocessing'],
          builder['vos_optimized']) == (None, 'eval', True, False)


def test_config_names():
  for name, size in [('configs/sam2.1/sam2.1_hiera_t.yaml', 'tiny'),
                     ('sam2.1_hiera_s.yaml', 'small'), ('sam2.1_hiera_b+', 'base_plus'),
                     ('configs/sam2.1/sam2.1_hiera_l.yaml', 'large')]:
    assert config_size(name) == size
  with pytest.raises(InputError, match='sam2.1_hiera_b\\+.yaml'):   # SAM 2.0: names the 2.1 file
    config_size('configs/sam2/sam2_hiera_b+.yaml')
  with pytest.raises(InputError, match='accepted: .*sam2.1_hiera_t.yaml'):
    config_size('sam2.1_hiera_huge.yaml')
  # Checked before the checkpoint is read.
  with pytest.raises(InputError, match='ckpt_path is required'):
    build_sam2_video_predictor(model_cfg)
  with pytest.raises(InputError, match='expected \\+\\+model'):
    build_sam2_video_predictor(model_cfg, 'missing.pt', hydra_overrides_extra=['++model.foo=1'])
  with pytest.raises(InputError, match='only non_overlap_masks=False'):
    build_sam2_video_predictor(model_cfg, 'missing.pt',
                               hydra_overrides_extra=['++model.non_overlap_masks=true'])


@pytest.fixture(scope='module')
def sam2_checkpoint(tmp_path_factory):
  return str(official_npz(tmp_path_factory, 'sam2_random'))


def test_build_at_1024(sam2_checkpoint):
  """The notebook's build line: SAM 2.1 Hiera-T at 1024, the official builder's options."""
  predictor = build_sam2_video_predictor(model_cfg, sam2_checkpoint, device=device)
  assert predictor.model == SAM2(trunk=trunk_items('tiny'))
  assert predictor.settings == Sam2Settings(add_all_frames_to_correct_as_cond=False)
  same = jax.tree_util.tree_all(jax.tree_util.tree_map(
      np.array_equal, predictor.params, convert(official_state('sam2_random'), SAM2())))
  assert same
  plain = build_sam2_video_predictor(
      model_cfg, sam2_checkpoint, apply_postprocessing=False,
      hydra_overrides_extra=['++model.add_all_frames_to_correct_as_cond=true',
                             'model.max_obj_ptrs_in_encoder=8'])
  assert plain.model == SAM2(trunk=trunk_items('tiny'), dynamic_multimask_via_stability=False)
  assert plain.settings == Sam2Settings(binarize_mask_from_pts_for_mem_enc=False,
                                        max_obj_ptrs_in_encoder=8)


@pytest.fixture(scope='module')
def predictor(sam2_checkpoint):
  predictor = build_sam2_video_predictor(model_cfg, sam2_checkpoint, device=device,
                                         hydra_overrides_extra=['++model.image_size=256'])
  assert predictor.model == SAM2(trunk=trunk_items('tiny'), image_size=256)
  return predictor


@pytest.fixture(scope='module')
def video_dir():
  return str(need_shared('data', 'real_clips', 'JPEGImages', 'bike'))


@pytest.fixture(scope='module')
def frames(video_dir):
  return np.stack([np.asarray(Image.open(f'{video_dir}/{i:05d}.jpg').convert('RGB'))
                   for i in range(4)])


def same_output(out_obj_ids, out_mask_logits, reference):
  """The official-style result equals the positional call's (frame, obj_ids, logits)."""
  _, ref_ids, ref_logits = reference
  assert out_obj_ids == ref_ids
  assert isinstance(out_mask_logits, np.ndarray) and out_mask_logits.dtype == np.float32
  assert out_mask_logits.shape == (len(out_obj_ids), 1, H, W)
  np.testing.assert_array_equal(out_mask_logits, ref_logits)


def same_propagation(video_segments, logits, reference):
  """video_segments as the notebook builds it; logits {frame: out_mask_logits}."""
  ref = {t: (ids, v) for t, ids, v in reference}
  assert list(video_segments) == list(ref)
  for t, (ids, v) in ref.items():
    np.testing.assert_array_equal(logits[t], v)
    assert list(video_segments[t]) == ids
    for i, out_obj_id in enumerate(ids):
      mask = video_segments[t][out_obj_id]
      assert type(mask) is np.ndarray and mask.dtype == bool and mask.shape == (1, H, W)
      np.testing.assert_array_equal(mask, v[i] > 0)


def propagate(predictor, inference_state, **kwargs):
  """The notebook's propagation cell; also returns the raw logits per frame."""
  video_segments, logits = {}, {}
  for out_frame_idx, out_obj_ids, out_mask_logits in predictor.propagate_in_video(
      inference_state, **kwargs):
    video_segments[out_frame_idx] = {
        out_obj_id: (out_mask_logits[i] > 0.0).cpu().numpy()
        for i, out_obj_id in enumerate(out_obj_ids)
    }
    logits[out_frame_idx] = out_mask_logits
  return video_segments, logits


def test_notebook_example_1_clicks_and_refinement(predictor, video_dir, frames):
  ref = predictor.init_state(frames)
  inference_state = predictor.init_state(video_path=video_dir)
  assert (inference_state['num_frames'], inference_state['video_height'],
          inference_state['video_width']) == (4, H, W)
  predictor.reset_state(inference_state)

  # Step 1: a first click.
  ann_frame_idx = 0  # the frame index we interact with
  ann_obj_id = 1  # give a unique id to each object we interact with (it can be any integers)
  points = np.array([[210, 350]], dtype=np.float32)
  labels = np.array([1], np.int32)
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  assert (out_mask_logits[0] > 0.0).cpu().numpy().shape == (1, H, W)
  assert isinstance(out_mask_logits, MaskLogits)
  same_output(out_obj_ids, out_mask_logits,
              predictor.add_new_points_or_box(ref, 0, 1, [[210, 350]], [1]))

  # Step 2: a second click, sending all clicks.
  points = np.array([[210, 350], [250, 220]], dtype=np.float32)
  labels = np.array([1, 1], np.int32)
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  same_output(out_obj_ids, out_mask_logits, predictor.add_new_points_or_box(
      ref, 0, 1, [[210, 350], [250, 220]], [1, 1]))

  # Step 3: propagate.
  video_segments, logits = propagate(predictor, inference_state)
  same_propagation(video_segments, logits, list(predictor.propagate_in_video(ref)))
  assert sorted(video_segments) == [0, 1, 2, 3]

  # Step 4: a negative click on a tracked frame (the notebook's frame 150).
  ann_frame_idx = 2  # further refine some details on this frame
  ann_obj_id = 1
  points = np.array([[82, 415]], dtype=np.float32)
  labels = np.array([0], np.int32)
  _, _, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  assert (out_mask_logits > 0.0).cpu().numpy().shape == (1, 1, H, W)
  same_output([1], out_mask_logits, predictor.add_new_points_or_box(ref, 2, 1, [[82, 415]], [0]))
  # The official default: a corrected frame is not made a conditioning frame.
  assert 2 in inference_state.objects[1].temp_non_cond

  # Step 5: propagate again.
  video_segments, logits = propagate(predictor, inference_state)
  same_propagation(video_segments, logits, list(predictor.propagate_in_video(ref)))


def test_notebook_example_2_box(predictor, video_dir, frames):
  ref = predictor.init_state(frames)
  inference_state = predictor.init_state(video_path=video_dir)
  predictor.reset_state(inference_state)

  ann_frame_idx = 0
  ann_obj_id = 4
  box = np.array([300, 0, 500, 400], dtype=np.float32)
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      box=box,
  )
  same_output(out_obj_ids, out_mask_logits,
              predictor.add_new_points_or_box(ref, 0, 4, box=[300, 0, 500, 400]))
  assert out_obj_ids == [4]

  # Refine the box with a positive click, sending the box again.
  points = np.array([[460, 60]], dtype=np.float32)
  labels = np.array([1], np.int32)
  box = np.array([300, 0, 500, 400], dtype=np.float32)
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
      box=box,
  )
  same_output(out_obj_ids, out_mask_logits, predictor.add_new_points_or_box(
      ref, 0, 4, [[460, 60]], [1], True, True, [300, 0, 500, 400]))

  video_segments, logits = propagate(predictor, inference_state)
  same_propagation(video_segments, logits, list(predictor.propagate_in_video(ref)))


def test_notebook_example_3_objects_then_mask_remove_and_reverse(predictor, video_dir, frames):
  ref = predictor.init_state(frames)
  inference_state = predictor.init_state(video_path=video_dir)
  predictor.reset_state(inference_state)
  prompts = {}

  ann_frame_idx = 0
  ann_obj_id = 2
  points = np.array([[200, 300]], dtype=np.float32)
  labels = np.array([1], np.int32)
  prompts[ann_obj_id] = points, labels
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  same_output(out_obj_ids, out_mask_logits,
              predictor.add_new_points_or_box(ref, 0, 2, [[200, 300]], [1]))

  points = np.array([[200, 300], [275, 175]], dtype=np.float32)
  labels = np.array([1, 0], np.int32)
  prompts[ann_obj_id] = points, labels
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  same_output(out_obj_ids, out_mask_logits,
              predictor.add_new_points_or_box(ref, 0, 2, [[200, 300], [275, 175]], [1, 0]))

  ann_obj_id = 3
  points = np.array([[400, 150]], dtype=np.float32)
  labels = np.array([1], np.int32)
  prompts[ann_obj_id] = points, labels
  _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(
      inference_state=inference_state,
      frame_idx=ann_frame_idx,
      obj_id=ann_obj_id,
      points=points,
      labels=labels,
  )
  assert out_obj_ids == [2, 3] and out_mask_logits.shape == (2, 1, H, W)
  same_output(out_obj_ids, out_mask_logits,
              predictor.add_new_points_or_box(ref, 0, 3, [[400, 150]], [1]))
  frame0_obj3 = out_mask_logits[1].copy()

  video_segments, logits = propagate(predictor, inference_state)
  same_propagation(video_segments, logits, list(predictor.propagate_in_video(ref)))

  # Beyond the notebook: a mask prompt for a new object on frame 1 (object 3's tracked mask).
  mask = video_segments[1][3][0]
  _, out_obj_ids, out_mask_logits = predictor.add_new_mask(
      inference_state=inference_state, frame_idx=1, obj_id=5, mask=mask)
  assert out_obj_ids == [2, 3, 5]
  same_output(out_obj_ids, out_mask_logits, predictor.add_new_mask(ref, 1, 5, mask))
  np.testing.assert_allclose(out_mask_logits[:2], logits[1][:2], atol=1e-5)   # tracked outputs

  # remove_object: the remaining objects' logits on the frames object 2 had prompts on.
  obj_ids, updated_frames = predictor.remove_object(inference_state, 2)
  ref_ids, ref_updated = predictor.remove_object(ref, 2)
  assert obj_ids == ref_ids == [3, 5] == inference_state['obj_ids']
  assert [t for t, _ in updated_frames] == [t for t, _ in ref_updated] == [0]
  assert updated_frames[0][1].shape == (2, 1, H, W)
  np.testing.assert_array_equal(updated_frames[0][1], ref_updated[0][1])
  np.testing.assert_allclose(updated_frames[0][1][0], frame0_obj3, atol=1e-5)
  assert predictor.remove_object(inference_state, 2) == ([3, 5], [])
  with pytest.raises(InputError, match='does not exist'):
    predictor.remove_object(inference_state, 2, strict=True)

  # Backwards from the last frame over two more frames.
  video_segments, logits = propagate(predictor, inference_state, start_frame_idx=3,
                                     max_frame_num_to_track=2, reverse=True)
  assert list(video_segments) == [3, 2, 1]
  same_propagation(video_segments, logits, list(predictor.propagate_in_video(
      ref, start_frame_idx=3, max_frame_num_to_track=2, reverse=True)))

  assert predictor.remove_object(inference_state, 3)[0] == [5]
  assert predictor.remove_object(inference_state, 5) == ([], [])   # the last one: a reset
  assert inference_state['obj_ids'] == [] and not inference_state.objects


def _moving_square(t, h, w):
  frames = np.full((t, h, w, 3), 60, np.uint8)
  for i in range(t):
    frames[i, 8:24, 4 + 4 * i:20 + 4 * i] = (220, 40, 40)
  return frames


@pytest.mark.parametrize('size', [64, 32])   # 48x64 frames kept as they are, then shrunk
def test_init_state_mp4_and_array(tmp_path, size):
  pytest.importorskip('av', reason='reading .mp4 needs PyAV (pip install av)')
  from memvos_jax.apps import visualize
  from memvos_jax.data.video_file import VideoReader
  frames = _moving_square(5, 48, 64)
  path = tmp_path / 'clip.mp4'
  with visualize.OverlayVideoWriter(path, 10.0) as writer:
    for f in frames:
      writer.write(f)
  decoded = np.concatenate([c for _, c in VideoReader(path, chunk=2)])
  assert np.abs(decoded.astype(int) - frames).mean() < 6   # lossy codec
  predictor = Sam2Predictor(None, SAM2(image_size=size))   # loading needs no weights
  for video_path, source in [(str(path), decoded), (path, decoded), (frames, frames)]:
    inference_state = predictor.init_state(video_path=video_path, offload_video_to_cpu=True,
                                           offload_state_to_cpu=True, async_loading_frames=True)
    assert (inference_state['num_frames'], inference_state.video_hw) == (5, (48, 64))
    for i in (0, 4):
      np.testing.assert_array_equal(inference_state.load_frame(i), resize_frame(source[i], size))
  with pytest.raises(InputError, match='no such folder or video file'):
    predictor.init_state(video_path=str(tmp_path / 'missing.mp4'))
  Image.fromarray(frames[0]).save(tmp_path / 'frame.png')
  with pytest.raises(InputError, match='a folder of JPEG frames, a video file'):
    predictor.init_state(video_path=str(tmp_path / 'frame.png'))
  with pytest.raises(InputError, match='uint8'):
    predictor.init_state(video_path=frames.astype(np.float32))
