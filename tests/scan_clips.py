"""Random clips and a chunked driver for the scan-core tests (STCN, STM)."""

import numpy as np

from memvos_jax.inference import core


def random_clip(t, size, k, given_at=((0, (True, True)),), seed=0, top=10):
  """Noise frames with box annotations: (images [T,H,W,3], annotation [T,H,W], given [T,K]).

  ``given_at``: (frame, per-object flags); object j's box starts at row ``top + 10 j``.
  """
  h, w = size
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
  annotation = np.zeros((t, h, w), np.uint8)
  given = np.zeros((t, k), bool)
  for f, objs in given_at:
    for j, on in enumerate(objs):
      if on:
        annotation[f, top + 10 * j:20 + 10 * j, 10 + 20 * j:40 + 20 * j] = j + 1
        given[f, j] = True
  return images, annotation, given


def run_chunks(fn, variables, state, clip, settings, last_known=True):
  """Feed ``clip`` through ``fn`` in padded chunks -> (state, masks [T,H,W], probs or None)."""
  images, annotation, given = clip
  t, chunk = len(images), settings.chunk
  masks, probs = [], []
  for s in range(0, t, chunk):
    n = min(chunk, t - s)
    pad = lambda a: np.concatenate([a[s:s + n], np.zeros((chunk - n,) + a.shape[1:], a.dtype)])
    idx = np.arange(s, s + chunk, dtype=np.int32)
    xs = core.FrameInput(image=pad(images), annotation=pad(annotation), given=pad(given),
                              index=idx, is_last=(idx == t - 1) & last_known,
                              valid=np.arange(chunk) < n)
    state, out = fn(variables, state, xs)
    masks.append(np.asarray(out.mask[:n]))
    if settings.return_probs:
      probs.append(np.asarray(out.probs[:n]))
  return state, np.concatenate(masks), (np.concatenate(probs) if probs else None)
