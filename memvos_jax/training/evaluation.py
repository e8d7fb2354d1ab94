"""Validation during training: J&F on held-out synthetic clips, and its baseline.

The clips come from a seed stream disjoint from training. Only objects
visible on frame 0 are given (and scored, ids renumbered 1..n); the rest of
each clip is segmented by the inference scan (``pipeline.ClipSegmenter``, the
eval.py path) and scored with the official semi-supervised protocol
(``metrics.score_sequence``: frames 1..T-2). The baseline copies the first
frame's mask to every frame.
"""

import numpy as np

from memvos_jax import metrics, pipeline
from memvos_jax.data import synthetic


def heldout(num_clips: int, num_frames: int, size: int, min_area: int = 16):
  """[(frames [T, S, S, 3], gt ids [T, S, S])] with frame-0 objects renumbered 1..n."""
  out = []
  for frames, ids in synthetic.heldout_clips(num_clips, num_frames, (size, size)):
    labels, counts = np.unique(ids[0], return_counts=True)
    keep = [int(l) for l, c in zip(labels, counts) if l and c >= min_area]
    lut = np.zeros(256, np.uint8)
    lut[keep] = np.arange(1, len(keep) + 1)
    gt = lut[ids]
    if keep:
      out.append((frames, gt))
  return out


def jf(clips, predictions) -> dict:
  """Global J&F over every object of every clip (the DAVIS global row)."""
  js, fs = [], []
  for (_, gt), pred in zip(clips, predictions):
    for s in metrics.score_sequence(gt, pred).values():
      js.append(s['J-Mean'])
      fs.append(s['F-Mean'])
  j, f = float(np.mean(js)), float(np.mean(fs))
  return {'J&F': (j + f) / 2, 'J': j, 'F': f}


def copy_first_frame(clips) -> dict:
  return jf(clips, [np.repeat(gt[:1], len(gt), axis=0) for _, gt in clips])


class Validator:
  """Reuses one ClipSegmenter (compiled once) across validations."""

  def __init__(self, config, model):
    t = config.training
    size = t.eval_size or t.crop_size
    self.clips = heldout(t.eval_clips, t.eval_frames, size)
    inf = config.inference
    self.seg = pipeline.ClipSegmenter(model, None, mem_every=inf.mem_every, top_k=inf.top_k,
                                      memory_capacity=inf.memory_capacity, chunk=inf.chunk)
    self.baseline = copy_first_frame(self.clips)

  def __call__(self, variables) -> dict:
    self.seg.variables = variables
    preds = [self.seg.segment_arrays(frames, {0: gt[0]}) for frames, gt in self.clips]
    return jf(self.clips, preds)
