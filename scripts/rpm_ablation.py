"""RPM-Net at small scale: the structure of the supplement's Table 2 on CPU.

    python scripts/rpm_ablation.py --out runs/rpm_ablation [--steps 300]
        [--depths resnet18,resnet34] [--matchings deformable,standard1,...]

For every (embedding depth x matching module) the ``configs/rpm.py:tiny``
network is trained self-supervised on the unlabeled ``bedroom`` frames, then
propagates the first-frame masks of an evaluation set through
``ClipSegmenter`` (the eval.py path) and is scored with the DAVIS
J&F protocol. Baselines: copying the first-frame mask to every frame, and the
untrained network.

Evaluation set (``<out>/eval_set``, DAVIS generic layout, every frame
annotated): the bundled annotated frames (bike 00000 with 2 objects; judo
00000, 00005, 00008 and 00013, one object each; judo's 00005.png is 853 px
wide and is resized to the frames' 854 by nearest neighbour) made into clips
by a smooth camera pan/zoom (``frame_pairs.pan_clip``), plus bike's two
objects moving over the real bedroom video (``frame_pairs.paste_clip``).
The bundled clips themselves have no ground truth after the frame that gives
each object, so they cannot be scored directly.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memvos_jax.configs import rpm as rpm_config  # noqa: E402
from memvos_jax import metrics  # noqa: E402
from memvos_jax.registry import build_model  # noqa: E402
from memvos_jax.inference.clip import ClipSegmenter  # noqa: E402
from memvos_jax.data import frame_pairs, video_folder  # noqa: E402
from memvos_jax.metrics import summary  # noqa: E402
from memvos_jax.models import rpm as rpm_model  # noqa: E402
from memvos_jax.models.rpm import convert as convert_rpm  # noqa: E402
from memvos_jax.models.rpm import modeling as rpm  # noqa: E402

REAL = REPO.parent / 'shared' / 'data' / 'real_clips'
MATCHINGS = {
    'deformable': dict(matching='deformable', matching_layers=3, dilation=1),
    'standard1': dict(matching='standard', matching_layers=1, dilation=1),
    'standard3': dict(matching='standard', matching_layers=3, dilation=1),
    'standard5': dict(matching='standard', matching_layers=5, dilation=1),
    'dilated3': dict(matching='dilated', matching_layers=3, dilation=3),
    'dilated6': dict(matching='dilated', matching_layers=3, dilation=6),
    'dilated9': dict(matching='dilated', matching_layers=3, dilation=9),
}


def make_eval_set(root, size=(192, 320), frames=12, seed=0) -> pathlib.Path:
  """Write the evaluation clips under ``root`` (see the module docstring)."""
  root = pathlib.Path(root)
  if (root / 'done').exists():
    return root
  rng = np.random.default_rng(seed)
  def load(clip, stem):
    img = video_folder.read_frame(REAL / 'JPEGImages' / clip / f'{stem}.jpg')
    ann = Image.open(REAL / 'Annotations' / clip / f'{stem}.png')
    palette = ann.getpalette()
    if ann.size != (img.shape[1], img.shape[0]):
      ann = ann.resize((img.shape[1], img.shape[0]), Image.NEAREST)
    ann = np.array(ann)
    ids = np.zeros(256, np.uint8)      # object ids -> 1..K (the DAVIS protocol)
    present = [i for i in np.unique(ann) if i]
    ids[present] = np.arange(1, len(present) + 1)
    return img, ids[ann], palette
  for clip, stem in (('bike', '00000'), ('judo', '00000'), ('judo', '00005'),
                     ('judo', '00008'), ('judo', '00013')):
    img, mask, palette = load(clip, stem)
    f, m = frame_pairs.pan_clip(img, mask, frames, size, rng)
    frame_pairs.write_clip(root, f'{clip}{stem[-2:]}_pan', f, m, palette)
  img, mask, palette = load('bike', '00000')
  bedroom = sorted((REAL / 'JPEGImages' / 'bedroom').glob('*.jpg'))[::2][:frames]
  backgrounds = np.stack([video_folder.read_frame(p) for p in bedroom])
  f, m = frame_pairs.paste_clip(img, mask, backgrounds, size, rng)
  frame_pairs.write_clip(root, 'bike_paste', f, m, palette)
  (root / 'done').write_text('ok')
  return root


def _score(clips, predict) -> dict:
  rows = []
  for clip in clips:
    gt = video_folder.read_annotations(clip)
    gt_masks = np.stack([gt.masks[i] for i in range(len(clip.frame_paths))])
    pred = predict(clip, gt_masks)
    for k, r in metrics.score_sequence(gt_masks, pred).items():
      rows.append({'Sequence': f'{clip.name}_{k}', **{c: r[c] for c in summary.GLOBAL_COLUMNS[1:]}})
  g = summary.global_row(rows)
  return {'J&F': g['J&F-Mean'], 'J': g['J-Mean'], 'F': g['F-Mean'],
          'per_clip': {r['Sequence']: (r['J-Mean'] + r['F-Mean']) / 2 for r in rows}}


def copy_first(clip, gt_masks):
  return np.broadcast_to(gt_masks[0], gt_masks.shape).copy()


def propagate_with(config, variables, **settings):
  model = build_model(config)
  options = dict(config.inference.to_dict(), **settings)
  seg = ClipSegmenter(rpm_model.FAMILY, model, variables, **options)
  def predict(clip, gt_masks):
    preds = {}
    seg.segment(clip, None, on_frame=lambda i, ids, probs: preds.__setitem__(i, ids))
    return np.stack([preds[i] for i in range(len(gt_masks))])
  return predict


# Inference settings scored for every network: the default (calibrated) and
# without calibration (the matching module's field as it comes).
SETTINGS = {'calibrated': dict(calibrate=True), 'raw': dict(calibrate=False)}


def score_all(clips, config, variables):
  return {name: _score(clips, propagate_with(config, variables, **s))
          for name, s in SETTINGS.items()}


def tiny_config(depth, matching, steps):
  config = rpm_config.get_config('tiny')
  config.unlock()
  config.network.backbone = depth
  for k, v in MATCHINGS[matching].items():
    config.network[k] = v
  config.training.num_steps = steps
  config.training.lr_steps = (int(steps * 0.8),)
  config.training.log_every = max(steps // 10, 1)
  config.lock()
  return config


def markdown(results, depths) -> str:
  """Table 2's layout: matching module rows x embedding depth columns, J/F (J&F)."""
  head = (['matching module', 'kernel / rate', 'layers']
          + [f'FCN-{d.replace("resnet", "ResNet")}' for d in depths])
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  spec = {'deformable': ('deformable', '3/1', 3), 'standard1': ('standard', '3/1', 1),
          'standard3': ('standard', '3/1', 3), 'standard5': ('standard', '3/1', 5),
          'dilated3': ('dilated', '3/3', 3), 'dilated6': ('dilated', '3/6', 3),
          'dilated9': ('dilated', '3/9', 3)}
  for m, (kind, rate, n) in spec.items():
    cells = []
    for d in depths:
      r = results.get(f'{d}/{m}', {}).get('scores', {}).get('calibrated')
      cells.append(f'{100 * r["J"]:.1f} / {100 * r["F"]:.1f} ({100 * r["J&F"]:.1f})' if r else '—')
    lines.append(f'| {kind} | {rate} | {n} | ' + ' | '.join(cells) + ' |')
  c = results['copy_first']
  lines.append(f'| copy first mask | | | '
               f'{100 * c["J"]:.1f} / {100 * c["F"]:.1f} ({100 * c["J&F"]:.1f}) |'
               + ' |' * (len(depths) - 1))
  return '\n'.join(lines)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default='runs/rpm_ablation')
  p.add_argument('--steps', type=int, default=300)
  p.add_argument('--depths', default='resnet18,resnet34')
  p.add_argument('--matchings', default=','.join(MATCHINGS))
  p.add_argument('--untrained', action='store_true', help='also score each untrained network')
  p.add_argument('--table', action='store_true', help='print the markdown table of results.json')
  args = p.parse_args()
  out = pathlib.Path(args.out)
  if args.table:
    print(markdown(json.loads((out / 'results.json').read_text()), args.depths.split(',')))
    return
  out.mkdir(parents=True, exist_ok=True)
  clips = video_folder.find_clips(make_eval_set(out / 'eval_set'))
  results_path = out / 'results.json'
  results = json.loads(results_path.read_text()) if results_path.exists() else {}
  if 'copy_first' not in results:
    results['copy_first'] = _score(clips, copy_first)
  print(f'copy first mask: J&F {results["copy_first"]["J&F"]:.3f}', flush=True)
  for depth in args.depths.split(','):
    for matching in args.matchings.split(','):
      key = f'{depth}/{matching}'
      if key in results:
        print(key, results[key]['scores']['calibrated']['J&F'], '(cached)')
        continue
      config = tiny_config(depth, matching, args.steps)
      model = rpm.RPMNet(**config.network.to_dict())
      init = rpm.init_variables(model, rpm.jax.random.key(config.training.seed))
      row = {}
      if args.untrained:
        row['untrained'] = score_all(clips, config, init)
      weights = out / 'weights' / f'{depth}_{matching}.npz'
      if weights.exists():   # trained before: score again only
        variables = convert_rpm.convert(dict(np.load(weights)), model, str(weights))
        row.update(json.loads(weights.with_suffix('.json').read_text()))
      else:
        tic = time.perf_counter()
        variables, history = rpm_model.train(config, log=lambda s: None, variables=init)
        meta = {'train_seconds': round(time.perf_counter() - tic, 1), 'history': history}
        weights.parent.mkdir(exist_ok=True)
        convert_rpm.save_npz(weights, variables)
        weights.with_suffix('.json').write_text(json.dumps(meta))
        row.update(meta)
      row['scores'] = score_all(clips, config, variables)
      results[key] = row
      h = row['history'][-1]
      print(f'{key}: ' + ', '.join(f'{n} J&F {v["J&F"]:.3f} (J {v["J"]:.3f}, F {v["F"]:.3f})'
                                   for n, v in row['scores'].items())
            + f'; loss {h["loss"]:.4f} vs identity {h["identity"]:.4f}; {row["train_seconds"]}s'
            + ''.join(f'; untrained {n} {v["J&F"]:.3f}'
                      for n, v in row.get('untrained', {}).items()),
            flush=True)
      results_path.write_text(json.dumps(results, indent=1))
  results_path.write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
  main()
