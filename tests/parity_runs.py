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
import functools
import json
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import memvos_jax
from conftest import need_shared, official_npz, official_state
from memvos_jax import registry
from memvos_jax.data import video_folder
from memvos_jax.inference import core
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.memory.readout import l2_affinity
from memvos_jax.models import stcn as stcn_model
from memvos_jax.models.sam2 import SAM2
from memvos_jax.models.sam2.convert import convert as convert_sam2
from memvos_jax.models.sam2.predictor import Sam2Predictor
from memvos_jax.models.stcn import STCN
from memvos_jax.nn.aggregate import aggregate
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
  """STCN: ClipSegmenter, chunk 4, mem_every and top_k of the recording (5, 20).

  extra: 'model', 'variables', 'clip' (what ``stcn_segment`` and
  ``stcn_near_ties`` rerun and analyse).
  """
  npz = checkpoint('stcn_random')
  clip = _bike()
  expected = load_expected('stcn_random')
  model = STCN()
  variables = convert_file(str(npz), 'stcn', model)
  got = stcn_segment(model, variables, clip, expected)
  return BikeRun(expected, got, npz,
                 extra={'model': model, 'variables': variables, 'clip': clip})


def stcn_segment(model, variables, clip, expected, chunk: int = 4) -> dict:
  """STCN's bike run as the parity row makes it: t -> (ids [H, W], probs [K+1, H, W])."""
  seg = ClipSegmenter(stcn_model.FAMILY, model, variables, mem_every=int(expected['mem_every']),
                      top_k=int(expected['top_k']), chunk=chunk, return_probs=True)
  got = {}
  seg.segment(clip, on_frame=lambda i, ids, probs: got.__setitem__(i, (ids, probs)))
  return got


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


# --- STCN's knife edges ---------------------------------------------------------------
#
# On bike, STCN's frames 1-3 read frame 0's memory only (mem_every 5), each
# query cell (stride 16) through the top 20 of its 1620 L2 affinities. Two
# places there are decided by float32 rounding rather than by the maths, so
# any two float32 implementations (torch's, ours, ours on another CPU) may
# differ there by more than the parity tolerance:
#   * near-tie cells: the 20th and 21st affinities are closer than float32
#     noise, so the top-k sets may differ; with these random weights (flat
#     affinities: the 20th entry weighs ~0.04) the other choice moves the
#     probabilities near the cell by up to 42/255;
#   * saturated pixels: two objects' sigmoids lie within a few dozen float32
#     ulps of 1, so their split in the soft aggregation (odds p / (1 - p)) is
#     set by how 1 - p rounds: one ulp moves the probabilities by up to ~10/255.
# The pixels either can reach are "fed"; the parity row allows differences
# only there and is strict everywhere else. docs/parity.md has the
# measurements behind each constant.

# A cell is a near-tie when gap < NEAR_TIE_KAPPA * scale: ``scale`` is the
# gap's first-order sensitivity to relative noise in the keys (``gap_noise_scale``).
# Measured over 29 160 cell-frames (bike frames 1-3, the keys of four float32
# runs: as loaded, weights +-1 ulp with two seeds, input +-1 ulp), the gaps
# of two runs differ by |N| * 3.1e-6 * scale (median 2.1e-6 scale, 99.9 %
# 1.1e-5 scale, max 1.70e-5 scale); 2e-5 covers the largest with 18 % margin
# (6.5 sigma). Cells whose top-k sets differed between any two of those runs
# had gaps below 7.8e-6 scale.
NEAR_TIE_KAPPA = 2e-5
# A near-tie cell feeds the pixels whose probabilities its other choice moves
# by more than FED_ATOL / 255, a saturated pixel is one whose probabilities
# SATURATION_ULPS ulps (2^-24 each) in any 1 - sigmoid move by more than
# FED_ATOL / 255: outside the fed pixels a flip or a rounding of 1 - p moves
# a probability by less than a quarter of the parity tolerance (2/255).
FED_ATOL = 0.5
# 2 ulps of p = one ulp of 1 + e^-x (2^-23), the coarsest rounding step of 1 / (1 + e^-x).
SATURATION_ULPS = 2
# The other choice is decoded on a crop of +-EFFECT_CROP cells around the
# cell (the decoder's support reaches 74 px = 4.6 cells beyond a cell; the
# crop's edge moves the measured change by <= 0.09/255 against +-10 cells).
EFFECT_CROP = 6
# Entries looked at below the k-th, for cells with more than two entries in the window.
_WINDOW = 4


def gap_noise_scale(mem_keys, query_keys, upper, lower):
  """The noise scale of the gap a[upper] - a[lower] per query (numpy, float64).

  a_j = (2 q.m_j - |m_j|^2) / sqrt(Ck) (the L2 affinity), so noise dq, dm_j in
  the keys moves the gap by (2 dq.(m_u - m_l) + 2 (q - m_u).dm_u - 2 (q - m_l).dm_l)
  / sqrt(Ck). With relative key noise |dk| = rho |k| in random directions this
  is rho * N(0, 1) / sqrt(Ck) times the returned scale
  2 sqrt(|q|^2 |m_u - m_l|^2 + |q - m_u|^2 |m_u|^2 + |q - m_l|^2 |m_l|^2) / sqrt(Ck).
  mem_keys [M, Ck], query_keys [Q, Ck], upper / lower [Q] memory indices -> [Q].
  """
  m = np.asarray(mem_keys, np.float64)
  q = np.asarray(query_keys, np.float64)
  mu, ml = m[upper], m[lower]
  n2 = lambda x: np.sum(x * x, axis=-1)
  ck = m.shape[-1]
  total = n2(q) * n2(mu - ml) + n2(q - mu) * n2(mu) + n2(q - ml) * n2(ml)
  return 2.0 * np.sqrt(total) / np.sqrt(ck)


def top_k_margins(mem_keys, query_keys, top_k: int):
  """Per query: (gap [Q] of its top_k-th and (top_k+1)-th affinities, scale [Q], order, values).

  The affinities are the model's (``memory.l2_affinity``, float32); ``order``
  [Q, top_k + _WINDOW] holds the memory indices in decreasing affinity and
  ``values`` their affinities.
  """
  aff = jax.jit(l2_affinity)(jnp.asarray(mem_keys), jnp.asarray(query_keys))
  values, order = jax.lax.top_k(aff, top_k + _WINDOW)
  values, order = np.asarray(values), np.asarray(order)
  gap = values[:, top_k - 1] - values[:, top_k]
  scale = gap_noise_scale(mem_keys, query_keys, order[:, top_k - 1], order[:, top_k])
  return gap, scale, order, values


def top_k_flips(mem_a, query_a, mem_b, query_b, top_k: int):
  """[Q] bool: query cells whose top-k memory sets differ between keys a and keys b."""
  sets = [np.sort(np.asarray(jax.lax.top_k(jax.jit(l2_affinity)(m, q), top_k)[1]), axis=1)
          for m, q in ((mem_a, query_a), (mem_b, query_b))]
  return np.any(sets[0] != sets[1], axis=1)


def saturation(logits, probs, ulps: int = SATURATION_ULPS):
  """[H, W]: how far (x 255) ``ulps`` ulps of float32 rounding in 1 - sigmoid can move probs.

  logits [K, H, W] (the decoder's), probs [K+1, H, W] (bg first, aggregated).
  The aggregation is a softmax over log odds, odds_k = p_k / (1 - p_k) with
  p_k clipped to 1 - 1e-7 (1 - 2 ulps in float32): a change of d in 1 - p_k
  moves log odds_k by d / (1 - p_k) (the background's by the sum), and
  prob_j by prob_j |[j == k] - prob_k| times that. Returns the largest bound
  over j with d = ``ulps`` * 2^-24.
  """
  u = 2.0 ** -24
  q = np.maximum(1.0 / (1.0 + np.exp(np.asarray(logits, np.float64))), 2 * u)   # 1 - p_k
  rel = ulps * u / q
  rel = np.concatenate([rel.sum(0, keepdims=True), rel])                   # bg first
  p = np.asarray(probs, np.float64)
  eye = np.eye(len(p))[:, :, None, None]
  return 255.0 * np.max(np.sum(p[:, None] * np.abs(eye - p[None]) * rel[None], axis=1), axis=0)


def ulp_perturbed(variables, seed: int):
  """``variables`` with every float32 entry moved one ulp up or down (random signs)."""
  rng = np.random.default_rng(seed)

  def move(a):
    a = np.asarray(a)
    if a.dtype != np.float32:
      return a
    up = rng.random(a.shape) < 0.5
    return np.where(up, np.nextafter(a, np.float32(np.inf)),
                    np.nextafter(a, np.float32(-np.inf))).astype(np.float32)
  return jax.tree.map(move, variables)


_ENCODERS: dict = {}


def stcn_keys(model, variables, clip, frames=range(4), input_seed: int | None = None) -> dict:
  """t -> encode_key(frame t) as numpy (k16, f16_thin, f16, f8, f4), each [1, ...].

  The frame is normalised and padded inside the jitted encoder, as the step
  does. ``input_seed``: normalised outside it instead (XLA then sums the first
  convolution in another order) and moved +-1 ulp per entry (random signs).
  """
  if id(model) not in _ENCODERS:          # compiled once per model (kept alive beside it)
    encode = lambda v, x: model.apply(v, x[None], method='encode_key')
    _ENCODERS[id(model)] = (model, jax.jit(lambda v, img: encode(v, core.prepare_frame(img, 16))),
                            jax.jit(encode))
  _, fused, plain = _ENCODERS[id(model)]
  rng = np.random.default_rng(input_seed)
  out = {}
  for t in frames:
    image = video_folder.read_frame(clip.frame_paths[t])
    if input_seed is None:
      keys = fused(variables, image)
    else:
      x = np.asarray(core.prepare_frame(image, 16))
      x = np.where(rng.random(x.shape) < 0.5, np.nextafter(x, np.float32(np.inf)),
                   np.nextafter(x, np.float32(-np.inf))).astype(np.float32)
      keys = plain(variables, x)
    out[t] = tuple(np.asarray(a) for a in keys)
  return out


def top_two_margin(probs):
  """[H, W]: the largest minus the second largest of probs [C, H, W]."""
  top = np.sort(probs, axis=0)
  return top[-1] - top[-2]


def outside_fed(edges, t: int, ids, probs, ref_ids, ref_probs, prob_atol: float) -> dict:
  """Frame t of a run against a reference, outside ``edges.fed(t)`` (probs x 255 both).

  'prob_misses': probability entries off by more than prob_atol / 255;
  'max_dev': the largest difference (x 255); 'mask_misses': pixels whose ids
  differ although our two largest probabilities are >= prob_atol / 255 apart
  (closer than that, probabilities within the tolerance may take either
  argmax); 'fed': the fed share of the frame; 'near': near-tie cells.
  """
  fed = edges.fed(t)
  dev = np.max(np.abs(probs * 255.0 - ref_probs), axis=0)
  decided = ~fed & (top_two_margin(probs) * 255.0 >= prob_atol)
  return {'near': int(edges.near[t].sum()), 'fed': float(fed.mean()),
          'prob_misses': int(np.sum((np.abs(probs * 255.0 - ref_probs) > prob_atol) & ~fed)),
          'max_dev': float(dev[~fed].max()),
          'mask_misses': int(np.sum((ids != ref_ids) & decided)),
          'prob_misses_fed': int(np.sum((np.abs(probs * 255.0 - ref_probs) > prob_atol) & fed))}


@dataclasses.dataclass(frozen=True)
class KnifeEdges:
  """STCN's near-tie cells, saturated pixels and the pixels they feed, frames 1..T-1."""
  gap: dict         # t -> [h, w]: 20th minus 21st affinity
  scale: dict       # t -> [h, w]: gap_noise_scale
  near: dict        # t -> [h, w] bool: gap < NEAR_TIE_KAPPA * scale
  flip_fed: dict    # t -> [H, W] bool: pixels a near cell's other choice moves by > FED_ATOL/255
  saturated: dict   # t -> [H, W] bool: saturation(...) > FED_ATOL
  effects: dict     # t -> [((y, x), other choices, max |dp| x 255, pixels moved > FED_ATOL/255)]
  keys: dict        # t -> k16 [h, w, Ck] used (t = 0: the memory's)

  def fed(self, t: int):
    """[H, W] bool: the pixels of frame t that float32 rounding may move beyond FED_ATOL/255."""
    return self.flip_fed[t] | self.saturated[t]


def stcn_knife_edges(run: BikeRun) -> KnifeEdges:
  """The STCN run's near-tie cells, saturated and fed pixels (once; kept in ``run.extra``).

  Memory: frame 0's keys and values (its annotation as the masks, as the
  step memorises it); queries: frames 1..T-1 (all read frame 0's memory only,
  checked here against the recording's mem_every). For every near-tie cell,
  each other choice (one of the entries within the tolerance above the cut
  swapped for one within it below) is read and decoded on a crop around the
  cell; the pixels whose probabilities it moves by > FED_ATOL/255 are fed.
  The whole frame is decoded once for the logits ``saturation`` needs.
  """
  if 'knife_edges' in run.extra:
    return run.extra['knife_edges']
  model, variables, clip = run.extra['model'], run.extra['variables'], run.extra['clip']
  top_k = int(run.expected['top_k'])
  num_frames = len(run.expected['masks'])
  assert int(run.expected['mem_every']) >= num_frames - 1   # frames 1.. read frame 0 only
  enc = stcn_keys(model, variables, clip, range(num_frames))
  ann = video_folder.read_annotations(clip)
  labels = [int(l) for l in np.unique(ann.masks[0]) if l]
  lut = np.zeros(256, np.uint8)
  lut[labels] = np.arange(1, len(labels) + 1)
  size = ann.size
  pt, pb, pl, pr = core.pad_amounts(size, 16)
  crop_frame = lambda a: a[..., pt:pt + size[0], pl:pl + size[1]]
  k16_0, _, f16_0, _, _ = enc[0]
  ids0 = np.pad(lut[ann.masks[0]], ((pt, pb), (pl, pr)))
  masks0 = aggregate((ids0[None] == np.arange(1, len(labels) + 1)[:, None, None])
                     .astype(np.float32))[1:]             # as merge_annotation gives frame 0
  image0 = core.prepare_frame(video_folder.read_frame(clip.frame_paths[0]), 16)
  values = jax.jit(functools.partial(model.apply, method='encode_value'))(
      variables, image0, f16_0[0], masks0)
  k, h, w, cv = values.shape
  values = np.asarray(values).reshape(k, h * w, cv)
  mem_keys = np.asarray(k16_0[0]).reshape(h * w, -1)
  n = 2 * EFFECT_CROP + 1

  @jax.jit
  def read(query, idx):
    """The readout [K, Q, Cv] of queries [Q, Ck] over memory entries idx [Q, top_k]."""
    a = jnp.take_along_axis(l2_affinity(jnp.asarray(mem_keys), query), idx, axis=1)
    return jnp.einsum('qj,kqjc->kqc', jax.nn.softmax(a, axis=1), jnp.asarray(values)[:, idx],
                      precision=jax.lax.Precision.HIGHEST)

  @jax.jit
  def decode(readouts, f16_thin, f8, f4):
    """readouts [S, K, h', w', Cv] and the query features there -> (logits, probs) per S."""
    logits = model.apply(variables, readouts.reshape(-1, *readouts.shape[2:]), f16_thin, f8, f4,
                         method='decode')
    logits = logits.reshape(readouts.shape[:2] + logits.shape[1:])
    return logits, jax.vmap(aggregate)(jax.nn.sigmoid(logits))

  out = {name: {} for name in ('gap', 'scale', 'near', 'flip_fed', 'saturated', 'effects')}
  out['keys'] = {0: np.asarray(k16_0[0])}
  for t in range(1, num_frames):
    k16, f16_thin, _, f8, f4 = (a[0] for a in enc[t])
    query = k16.reshape(h * w, -1)
    gap, scale, order, vals = top_k_margins(mem_keys, query, top_k)
    near = gap < NEAR_TIE_KAPPA * scale
    base_idx = order[:, :top_k]
    base = np.asarray(read(query, base_idx)).reshape(k, h, w, cv)
    logits, probs = decode(base[None], f16_thin, f8[None], f4[None])
    out['saturated'][t] = saturation(crop_frame(logits[0]), crop_frame(probs[0])) > FED_ATOL
    fed = np.zeros((h * 16, w * 16), bool)                    # padded frame
    effects = []
    for c in np.flatnonzero(near):
      y, x = divmod(int(c), w)
      tol = NEAR_TIE_KAPPA * scale[c]
      upper = [j for j in range(top_k) if vals[c, j] - vals[c, top_k] < tol]
      lower = [j for j in range(top_k, top_k + _WINDOW) if vals[c, top_k - 1] - vals[c, j] < tol]
      assert lower[-1] < top_k + _WINDOW - 1, 'more near entries than _WINDOW looks at'
      idx = []
      for u in upper:                                         # every other choice
        for l in lower:
          other = base_idx[c].copy()
          other[u] = order[c, l]
          idx.append(other)
      # S choices padded to a power of two (repeats of the last): a handful of compiled
      # shapes for read and decode instead of one per distinct S.
      num = len(idx)
      idx += [idx[-1]] * ((1 << (num - 1).bit_length()) - num)
      alt = np.asarray(read(np.repeat(query[c:c + 1], len(idx), 0), np.stack(idx)))  # [K, S, Cv]
      y0, x0 = min(max(y - EFFECT_CROP, 0), h - n), min(max(x - EFFECT_CROP, 0), w - n)
      readouts = np.repeat(base[None, :, y0:y0 + n, x0:x0 + n], len(idx) + 1, axis=0)
      readouts[1:, :, y - y0, x - x0] = np.moveaxis(alt, 1, 0)
      _, crop = decode(readouts, f16_thin[y0:y0 + n, x0:x0 + n],
                       f8[None, 2 * y0:2 * (y0 + n), 2 * x0:2 * (x0 + n)],
                       f4[None, 4 * y0:4 * (y0 + n), 4 * x0:4 * (x0 + n)])
      moved = np.max(np.abs(np.asarray(crop[1:num + 1] - crop[0])), axis=(0, 1)) * 255.0
      fed[16 * y0:16 * (y0 + n), 16 * x0:16 * (x0 + n)] |= moved > FED_ATOL
      effects.append(((y, x), num, float(moved.max()), int(np.sum(moved > FED_ATOL))))
    out['gap'][t], out['scale'][t], out['near'][t] = (
        gap.reshape(h, w), scale.reshape(h, w), near.reshape(h, w))
    out['flip_fed'][t], out['effects'][t], out['keys'][t] = crop_frame(fed), effects, k16
  edges = KnifeEdges(**out)
  run.extra['knife_edges'] = edges
  return edges


# The parity rows whose frames 1.. are checked outside the pixels float32 rounding decides.
KNIFE_EDGES: dict[str, Callable[[BikeRun], KnifeEdges]] = {'stcn': stcn_knife_edges}
