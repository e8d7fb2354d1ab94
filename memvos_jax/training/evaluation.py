"""Validation during training: J&F on held-out clips, and its baseline.

With ``data.davis_root`` and ``data.heldout`` set, the held-out clips are
those real DAVIS sequences (kept out of training by ``sampling``), segmented
at ``training.eval_size`` (0: ``inference.size``) and scored at their native size
against every frame's annotation, exactly as ``eval.py`` does. Otherwise they are synthetic clips
from a seed stream disjoint from training. Only objects
visible on frame 0 are given (and scored, ids renumbered 1..n); the rest of
each clip is segmented by the inference scan (``ClipSegmenter``, the
eval.py path) and scored with the official semi-supervised protocol
(``metrics.score_sequence``: frames 1..T-2). The baseline copies the first
frame's mask to every frame.
"""

import numpy as np

from memvos_jax import metrics
from memvos_jax.inference.clip import ClipSegmenter
from memvos_jax.inference.objects import ObjectSlots
from memvos_jax.data import sampling, synthetic, video_folder


def heldout(num_clips: int, num_frames: int, size: int, min_area: int = 16):
  """[(frames [T, S, S, 3], gt ids [T, S, S])] with frame-0 objects renumbered 1..n."""
  out = []
  for frames, ids in synthetic.heldout_clips(num_clips, num_frames, (size, size)):
    labels, counts = np.unique(ids[0], return_counts=True)
    keep = [int(l) for l, c in zip(labels, counts) if l and c >= min_area]
    slots = ObjectSlots(len(keep))
    for label in keep:
      slots.add(label, 0)
    gt = slots.to_slots(ids)
    if keep:
      out.append((frames, gt))
  return out


def heldout_davis(root, names, short_side: int = 0):
  """[(frames [T, h, w, 3] at ``short_side``, gt ids [T, H, W] native)] of DAVIS clips.

  Frames are stored already resized (the segmenter would resize them anyway),
  so five 480p clips cost ~120 MB, not ~500 MB.
  """
  out = []
  for clip in video_folder.find_clips(root, names):
    ann = video_folder.read_annotations(clip)
    if len(ann.masks) != len(clip.frame_paths):
      raise ValueError(f'{clip.annotation_dir}: held-out clip needs a mask on every frame')
    proc = video_folder.processing_size(ann.size, short_side)
    frames = np.stack([video_folder.resize_frames(video_folder.read_frame(p)[None], proc)[0]
                       for p in clip.frame_paths])
    out.append((frames, np.stack([ann.masks[i] for i in range(len(frames))])))
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

  def __init__(self, config, family, model):
    t, inf = config.training, config.inference
    names = sampling.heldout_names(config)
    self.real = bool(config.data.davis_root and names)
    if self.real:
      self.clips = heldout_davis(config.data.davis_root, names,
                                 t.eval_size or inf.get('size', 0))
    else:
      self.clips = heldout(t.eval_clips, t.eval_frames, t.eval_size or t.crop_size)
    # The model's inference settings as eval.py takes them (STCN: mem_every, top_k;
    # STM: mem_every); the frames are resized to inference.size above, one clip at a time.
    options = {k: v for k, v in inf.to_dict().items()
               if k not in ('size', 'batch_clips', 'max_objects', 'dtype')}
    self.seg = ClipSegmenter(family, model, None, **options)
    self.baseline = copy_first_frame(self.clips)

  def __call__(self, variables) -> dict:
    self.seg.variables = variables
    preds = []
    for frames, gt in self.clips:
      small = video_folder.resize_ids(gt[0], frames.shape[1:3])
      out_size = gt.shape[1:] if small.shape != gt.shape[1:] else None
      pred = np.zeros(gt.shape, np.uint8)
      chunks = ((s, frames[s:s + self.seg.chunk]) for s in range(0, len(frames), self.seg.chunk))
      self.seg.run(chunks, {0: small}, len(frames), frames.shape[1:3],
                   lambda i, ids, probs: pred.__setitem__(i, ids), out_size=out_size)
      preds.append(pred)
    return jf(self.clips, preds)
