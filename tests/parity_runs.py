"""The parity runs on ../shared's bike clip: each model run at most once per test session.

Each runner loads its fixture's official-format checkpoint (rebuilt by
../shared/fixtures/make_checkpoint.py, no torch), runs the model on
../shared/data/real_clips/bike exactly as the official recording was made
(settings from ../shared/fixtures/<name>/expected/bike.npz) and returns a
``BikeRun``. The session fixture ``bike_runs`` (conftest.py) caches them:
tests/test_parity.py compares them with the recordings (the parity table) and
the model files (test_stm_parity.py, test_afb_urr_parity.py,
test_sam2_parity.py) read the same runs for their model-specific checks.
"""

import dataclasses
import json
import pathlib
from typing import Any, Callable

import numpy as np

import memvos_jax
from conftest import need_shared, official_npz, official_state
from memvos_jax import registry
from memvos_jax.data import video_folder
from memvos_jax.inference import core
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.models import stcn as stcn_model
from memvos_jax.models.sam2 import SAM2
from memvos_jax.models.sam2.convert import convert as convert_sam2
from memvos_jax.models.sam2.predictor import Sam2Predictor
from memvos_jax.models.stcn import STCN
from memvos_jax.registry import convert_file


@dataclasses.dataclass(frozen=True)
class BikeRun:
  """One model's run on bike next to the official recording of the same run."""
  expected: Any                    # the recording: np.load(expected/bike.npz)
  # t -> (mask ids [H, W], probabilities [K+1, H, W])
  frames: dict = dataclasses.field(default_factory=dict)
  checkpoint: pathlib.Path | None = None   # the official-format .npz the run loaded
  # model-specific records (AFB-URR's banks, SAM 2's rows and traces)
  extra: dict = dataclasses.field(default_factory=dict)

  @property
  def prob_frames(self) -> list[int]:
    """The frame of each entry of expected['probs_u8'] (all frames unless the recording says)."""
    if 'prob_frames' in self.expected.files:
      return [int(t) for t in self.expected['prob_frames']]
    return list(range(len(self.expected['probs_u8'])))


def load_expected(fixture: str):
  """The official recording ../shared/fixtures/<fixture>/expected/bike.npz."""
  return np.load(need_shared('fixtures', fixture, 'expected', 'bike.npz'))


def _bike():
  root = need_shared('data', 'real_clips')
  return video_folder.find_clips(root, ['bike'])[0]


def stcn(checkpoint) -> BikeRun:
  """STCN: ClipSegmenter, chunk 4, mem_every and top_k of the recording (5, 20)."""
  npz = checkpoint('stcn_random')
  clip = _bike()
  expected = load_expected('stcn_random')
  model = STCN()
  seg = ClipSegmenter(stcn_model.FAMILY, model, convert_file(str(npz), 'stcn', model),
                      mem_every=int(expected['mem_every']),
                      top_k=int(expected['top_k']), chunk=4, return_probs=True)
  got = {}
  seg.segment(clip, on_frame=lambda i, ids, probs: got.__setitem__(i, (ids, probs)))
  return BikeRun(expected, got, npz)


def stm(checkpoint) -> BikeRun:
  """STM: memvos_jax.load (the Python API's loading path), then ClipSegmenter, chunk 4."""
  npz = checkpoint('stm_random')
  expected = load_expected('stm_random')
  clip = _bike()
  seg = memvos_jax.load('stm', str(npz))           # the Python API's loading path
  assert seg.clip.family.name == 'stm'
  clip_seg = ClipSegmenter(seg.clip.family, seg.model, seg.variables, chunk=4, return_probs=True,
                           mem_every=int(expected['mem_every']))
  got = {}
  clip_seg.segment(clip, on_frame=lambda i, ids, probs: got.__setitem__(i, (ids, probs)))
  return BikeRun(expected, got, npz)


def afb_urr(checkpoint) -> BikeRun:
  """AFB-URR: the scan core driven one frame per call, recording the banks after every update.

  extra: 'banks' (t -> the bank's counters after frame t), 'state' (the final state).
  """
  del checkpoint                 # the converted state is used directly, no .npz
  family = registry.get('afb_urr')
  model = family.build()
  variables = family.convert(official_state('afb_urr_random'), model, source='afb_urr_random')
  clip = _bike()
  expected = load_expected('afb_urr_random')
  ann = video_folder.read_annotations(clip)
  t_total = len(clip.frame_paths)
  labels = [int(l) for l in np.unique(ann.masks[0]) if l]
  settings = family.make_settings(
      budget=int(expected['budget']), update_rate=float(expected['update_rate']),
      thres_close=float(expected['thres_close']), thres_valid=float(expected['thres_valid']),
      capacity=family.memory_frames(t_total, {0}, {}), chunk=1, return_probs=True)
  fn = core.make_chunk_fn(model, settings, step=family.step)
  state = family.init_state(model, settings, len(labels), ann.size)
  lut = np.zeros(256, np.uint8)
  lut[labels] = np.arange(1, len(labels) + 1)
  out, banks = {}, {}
  for start, frames in video_folder.FrameReader(clip, 1, ann.size):
    t = start
    xs = core.FrameInput(
        image=frames[:1], annotation=(lut[ann.masks[0]] if t == 0 else
                                      np.zeros(ann.size, np.uint8))[None],
        given=np.full((1, len(labels)), t == 0), index=np.array([t], np.int32),
        is_last=np.array([t == t_total - 1]), valid=np.ones(1, bool))
    state, o = fn(variables, state, xs)
    out[t] = (np.asarray(o.mask[0]), np.asarray(o.probs[0]))
    b = state.bank
    banks[t] = {name: np.asarray(getattr(b, name)) for name in
                ('count', 'merged', 'merge_targets', 'removed', 'remove_calls', 'near', 'ties')}
  return BikeRun(expected, out, extra={'banks': banks, 'state': state})


def sam2(checkpoint) -> BikeRun:
  """SAM 2.1 Hiera-T: the video predictor at 1024x1024, the recording's prompts, then propagation.

  No per-frame masks/probabilities (``frames`` is empty): extra 'rows' has
  (frame, object ids, frame_outputs, video masks) per prompt and propagation
  step, 'traces' the predictor's compiles.
  """
  del checkpoint                 # the converted state is used directly, no .npz
  need_shared('fixtures', 'sam2_random', 'recipe.json')
  clip = need_shared('data', 'real_clips', 'JPEGImages', 'bike')
  expected = load_expected('sam2_random')
  params = convert_sam2(official_state('sam2_random'), SAM2(), source='sam2_random')
  traces = []
  pred = Sam2Predictor(params, SAM2(), on_trace=traces.append)
  state = pred.init_state(str(clip))
  rows = []
  for p in json.loads(str(expected['prompts_json'])):
    f, ids, video = pred.add_new_points_or_box(state, p['frame'], p['obj_id'], points=p['points'],
                                               labels=p['labels'], box=p['box'])
    rows.append((f, ids, dict(pred.frame_outputs(state, f)), video))
  for f, ids, video in pred.propagate_in_video(state):
    rows.append((f, ids, dict(pred.frame_outputs(state, f)), video))
  return BikeRun(expected, extra={'rows': rows, 'traces': traces})


# Each runner takes ``checkpoint(fixture) -> path of its official-format .npz``.
RUNNERS: dict[str, Callable[[Callable[[str], pathlib.Path]], BikeRun]] = {
    'stcn': stcn, 'stm': stm, 'afb_urr': afb_urr, 'sam2': sam2}


class BikeRuns:
  """``bike_runs(model)`` -> that model's BikeRun, computed on first use and kept for the session.

  ``bike_runs.checkpoint(fixture)``: the fixture's official-format .npz (written
  once; the runs load it too). A runner that skips (../shared absent) is not
  cached: every test that asks skips.
  """

  def __init__(self, tmp_path_factory):
    self._tmp = tmp_path_factory
    self._runs: dict[str, BikeRun] = {}
    self._npz: dict[str, pathlib.Path] = {}

  def checkpoint(self, fixture: str) -> pathlib.Path:
    if fixture not in self._npz:
      self._npz[fixture] = official_npz(self._tmp, fixture)
    return self._npz[fixture]

  def __call__(self, model: str) -> BikeRun:
    if model not in self._runs:
      self._runs[model] = RUNNERS[model](self.checkpoint)
    return self._runs[model]
