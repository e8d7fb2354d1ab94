"""Parity with the official codes on ../shared's bike clip: one table, one row per model.

Each row names the fixture whose expected/bike.npz was recorded with the
official code (torch, CPU, float32), how our run is made (tests/parity_runs.py
does it once per session, shared with the model-specific tests in
test_stm_parity.py and test_afb_urr_parity.py) and the per-frame bounds:
masks agree on >= ``masks`` of the pixels, probabilities within 2/255 on >=
``probs`` of the entries, and ``floors`` overrides both for given frames. The
annotated frame's probabilities are exact (within 0.5/255) for every row.
``why`` keeps the reason for each tolerance. Needs ../shared (skips without).

SAM 2.1 is not a row: its recording holds, per prompt and propagation step
(frame 0 three times) and object, low-res logits, object scores and binary
masks rather than per-frame ids and softmax probabilities, and no frame is
annotated; test_sam2_parity.py checks it (reading the same cached run).
docs/parity.md has the longer story of each tolerance.
"""

import dataclasses
import types

import numpy as np
import pytest

PROB_ATOL = 2.0        # probabilities compared as 255 p, within 2/255
ANNOTATED_ATOL = 0.5   # the annotated frame's 255 p


@dataclasses.dataclass(frozen=True)
class Row:
  model: str                  # the key of parity_runs.RUNNERS (and the test id)
  fixture: str                # ../shared/fixtures/<fixture>/expected/bike.npz
  run: str                    # how our run is made (the code: parity_runs.<model>)
  masks: float                # per frame: fraction of pixels whose mask agrees
  probs: float                # per frame: fraction of probabilities within 2/255
  why: str                    # why the bounds are what they are
  floors: types.MappingProxyType = types.MappingProxyType({})   # frame -> (masks, probs)
  num_frames: int | None = None   # the recording's frame count, where the floors assume it

  def bounds(self, t: int) -> tuple[float, float]:
    return self.floors.get(t, (self.masks, self.probs))


TABLE = (
    Row('stcn', 'stcn_random',
        run='ClipSegmenter(STCN(), chunk=4, mem_every=5 and top_k=20 from the npz, return_probs)',
        masks=0.999, probs=0.998,
        why='Recorded at mem_every 5, top_k 20. Masks must agree on >= 99.9% of pixels of '
            'every frame; probabilities to within 2/255 on >= 99.8%, not 99.9%. Measured: 1.0, '
            '0.99872, 0.99978, 0.99884 on frames 0..3. The misses are two or three 16x16 query '
            'cells per frame whose 20th and 21st affinities differ by ~1e-5 (e.g. cell (14, 12) '
            'of frame 1: gap 1.3e-5), below the float32 noise of any reimplementation\'s conv '
            'sums: torch\'s and our top-k sets differ there. float64 inference agrees with the '
            'recording even less (99.76%), so the residual is the recording\'s own rounding, not '
            'a semantic difference.'),
    Row('stm', 'stm_random',
        run='memvos_jax.load("stm", npz) (the Python API\'s loading path), then '
            'ClipSegmenter(chunk=4, mem_every=5 from the npz, return_probs)',
        masks=0.999, probs=0.999,
        floors=types.MappingProxyType({2: (0.97, 0.88), 3: (0.89, 0.72)}), num_frames=4,
        why='Recorded with eval_DAVIS.py\'s loop, Mem_every 5. Rerunning the official code on '
            'another x86 CPU (an Intel Xeon, 2026-11-26) reproduces frames 0-2 to 99.99 % of '
            'pixels and frame 3 to only 98.4 %. Frames 0 and 1 (memory: the annotated frame) '
            'must agree on >= 99.9% of pixels, masks and probabilities within 2/255. '
            'Frames 2 and 3 read frame 1\'s and 2\'s *predicted* soft masks, and with these '
            'random weights the network is chaotic there: both objects\' probabilities saturate '
            'within a few float32 ulps of 1, so float32 rounding noise in one frame\'s '
            'probabilities (~1e-5) moves the next frame\'s by up to 0.5. The official code '
            'itself, run with oneDNN disabled (the same float32 arithmetic, another summation '
            'order), agrees with the recording on only 98.14% / 91.13% (frame 2, masks / '
            'probabilities) and 90.96% / 75.31% (frame 3); this port gets 98.11% / 90.95% and '
            '91.57% / 75.70%. Fed the official frame-(t-1) probabilities as memory (float32, '
            'from a rerun of the official code), this port\'s frames 2 and 3 agree on 99.997% '
            'of pixels (test_stm_parity.py::test_teacher_forced_every_frame_matches_official). '
            'Frames 2 and 3 are checked against (masks, probabilities) bounds just below that '
            'noise floor, at or below which even the official code (oneDNN off) falls.'),
    Row('afb_urr', 'afb_urr_random',
        run='the scan core driven one frame per call (chunk=1, return_probs), budget, update '
            'rate and thresholds from the npz, the banks recorded after every update',
        masks=0.999, probs=0.999,
        why='Recorded with the official evaluation loop (DAVIS mode, torch CPU float32, budget '
            '300000, update rate 0.1): masks, softmax probabilities (as round(255 p)) and the '
            'banks per update and class (test_afb_urr_parity.py). Masks and probabilities '
            '>= 99.9 % on every frame.'),
)

# Every row is slow: the first test of a row makes the model's bike run (480p,
# compiled): STCN ~20 s, STM ~22 s, AFB-URR ~38 s on 2 CPU cores.
ROWS = [pytest.param(row, id=row.model, marks=pytest.mark.slow) for row in TABLE]


@pytest.mark.parametrize('row', ROWS)
def test_masks_match_official(row, bike_runs):
  run = bike_runs(row.model)
  if row.num_frames is not None:
    assert len(run.expected['masks']) == row.num_frames
  for t, ref in enumerate(run.expected['masks']):
    agree = np.mean(run.frames[t][0] == ref)
    assert agree >= row.bounds(t)[0], (t, agree)


@pytest.mark.parametrize('row', ROWS)
def test_probabilities_match_official(row, bike_runs):
  run = bike_runs(row.model)
  for i, t in enumerate(run.prob_frames):
    ref = run.expected['probs_u8'][i].astype(np.float32)
    close = np.mean(np.abs(run.frames[t][1] * 255.0 - ref) <= PROB_ATOL)
    assert close >= row.bounds(t)[1], (t, close)


@pytest.mark.parametrize('row', ROWS)
def test_annotated_frame_exact(row, bike_runs):
  run = bike_runs(row.model)
  assert run.prob_frames[0] == 0
  np.testing.assert_allclose(run.frames[0][1] * 255.0, run.expected['probs_u8'][0],
                             atol=ANNOTATED_ATOL)


def test_table_names_every_runner():
  """Every model with a parity run is a row, or says in its own file why it is not (SAM 2)."""
  import parity_runs
  assert {row.model for row in TABLE} == set(parity_runs.RUNNERS) - {'sam2'}
  assert len({row.model for row in TABLE}) == len(TABLE)
