"""Speed of the SAM 2.1 video predictor (``memvos_jax.sam2_predictor``) beside the official CPU figure.

Usage::

  python benchmarks/bench_sam2.py                       # both cases, Hiera-T at 1024
  python benchmarks/bench_sam2.py --case long --frames 210 --image-size 512
  python benchmarks/bench_sam2.py --json results.json

Cases:
  bike  the real 4-frame 480x854 clip, the fixture's prompts (a click for
        object 1, a box for object 2 on frame 0), propagation over the clip.
        The propagation is run twice on the same state (same compiled scan);
        object-frames/s = tracked object-frames (2 objects x 3 frames) / wall
        time of the second run; "compile s" = first run - second run.
  long  ``--frames`` frames (the bedroom clip looped), one click on frame 0,
        propagation with chunk 2; frames/s over the 20 frames up to frame 21
        (after the memory is full, frame 7 on) and over the 20 up to frame
        ``--probe`` (default 200). The memory read
        is fixed-size (conditioning slots + 6 frames + pointers), so the two
        should agree up to machine noise.

Weights: the random ``sam2_random`` fixture (official Hiera-T layout) from
``../shared/fixtures`` when present (speed does not depend on the weights),
else a random init. Official figure: ``../shared/BASELINE.md`` (SAM 2.1
Hiera-T, bike, 1024x1024, 2-core CPU): ~0.29 object-frames/s.

Unlike the other benchmarks, both cases run in this one process (peak RSS is
cumulative: run ``--case long`` alone for its own figure). Shared parts (paths,
fixture weights, peak RSS) are in ``_common.py``.
"""

import argparse
import json
import sys
import time

import numpy as np

import _common as common
from _common import FIXTURES, REPO

sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from PIL import Image  # noqa: E402

from memvos_jax.models.sam2 import SAM2, trunk_items  # noqa: E402
from memvos_jax.sam2_predictor import Sam2Predictor, Sam2Settings  # noqa: E402

OFFICIAL_OBJECT_FPS = 0.29


def load_params(model):
  if (FIXTURES / 'sam2_random' / 'recipe.json').exists() and model.image_size:
    from memvos_jax.models.sam2.convert import convert
    return convert(common.fixture_state('sam2_random'), model, source='sam2_random')
  s = model.image_size
  return jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((s, s, 3), jnp.uint8))


def clip_frames(name, n=None):
  frames = [np.asarray(Image.open(f).convert('RGB')) for f in common.real_frames(name)]
  if n is not None:
    frames = [frames[i % len(frames)] for i in range(n)]
  return np.stack(frames)


def case_bike(model, params, args):
  pred = Sam2Predictor(params, model, Sam2Settings(chunk=4))
  state = pred.init_state(clip_frames('bike'))
  pred.add_new_points_or_box(state, 0, 1, points=[[438, 324]], labels=[1])
  pred.add_new_points_or_box(state, 0, 2, box=[418, 121, 521, 328])
  times = []
  for _ in range(2):
    t0 = time.perf_counter()
    for _f, _ids, video in pred.propagate_in_video(state):
      pass
    times.append(time.perf_counter() - t0)
  tracked = 2 * (state.num_frames - 1)
  return dict(case='bike', object_frames=tracked, seconds=round(times[1], 2),
              object_fps=round(tracked / times[1], 3), compile_s=round(times[0] - times[1], 1),
              official_object_fps=OFFICIAL_OBJECT_FPS,
              ratio=round(tracked / times[1] / OFFICIAL_OBJECT_FPS, 2))


def case_long(model, params, args):
  pred = Sam2Predictor(params, model, Sam2Settings(chunk=2))
  frames = clip_frames('bedroom', args.frames)
  state = pred.init_state(frames)
  h, w = state.video_hw
  pred.add_new_points_or_box(state, 0, 1, points=[[w // 2, h // 2]], labels=[1])
  stamps = {}
  t0 = time.perf_counter()
  for f, _ids, _v in pred.propagate_in_video(state):
    stamps[f] = time.perf_counter() - t0

  def fps_at(frame):  # frames/s over the 10 chunks (20 frames) ending with frame's chunk
    end = min(frame - frame % 2 + 1, args.frames - 1)
    return 20 / (stamps[end] - stamps[end - 20])
  probe = min(args.probe, args.frames - 2)
  return dict(case='long', frames=args.frames, image_size=model.image_size,
              fps_frames_2_21=round(fps_at(21), 3), fps_at_probe=round(fps_at(probe), 3), probe=probe,
              total_s=round(stamps[args.frames - 1], 1))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--case', action='append', choices=['bike', 'long'])
  ap.add_argument('--size', default='tiny')
  ap.add_argument('--image-size', type=int, default=1024)
  ap.add_argument('--frames', type=int, default=210)
  ap.add_argument('--probe', type=int, default=200)
  ap.add_argument('--json')
  args = ap.parse_args()
  model = SAM2(trunk=trunk_items(args.size), image_size=args.image_size)
  params = load_params(model)
  results = []
  for case in args.case or ['bike', 'long']:
    if case == 'bike' and args.image_size != 1024:
      print('bike needs --image-size 1024 (the official setting); skipped')
      continue
    r = (case_bike if case == 'bike' else case_long)(model, params, args)
    # Peak RSS of this process so far (cumulative over the cases run), GiB.
    r['peak_rss_gb'] = round(common.peak_rss_bytes() / 2 ** 30, 2)
    r['device'] = jax.devices()[0].device_kind
    print(json.dumps(r))
    results.append(r)
  if args.json:
    common.write_json(args.json, results)


if __name__ == '__main__':
  main()
