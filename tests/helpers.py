"""Small models and random clips shared by the tests (no ../shared needed).

``tiny_stcn``: the small STCN (ResNet-18 encoders, key 16, value 32) with
random weights drawn in numpy; ``numpy_variables``: random weights drawn in numpy
from the variable shapes (no compiled init, which takes minutes for the large
models); ``random_frames`` / ``random_clip``: noise frames (and box
annotations); ``run_chunks``: a clip fed through a scan core's chunk function.
"""

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax.inference import core
from memvos_jax.models.stcn import STCN


def tiny_stcn(size, k, init_size=None):
  """(model, variables): STCN(ResNet-18 key and value encoders, key_dim 16, value_dim 32).

  Random weights drawn in numpy (``lecun_fill``, seed 0) on the variable shapes of an init
  on a [1, H, W, 3] image and [k, H, W] masks of ``init_size`` (default ``size``): ~1 s,
  where flax's eager init compiles ~500 small programs (~20 s on 2 cores).
  """
  h, w = init_size or size
  model = STCN(key_backbone='resnet18', value_backbone='resnet18', key_dim=16, value_dim=32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, h, w, 3)),
                          jnp.zeros((k, h, w)))
  return model, numpy_variables(shapes, lecun_fill)


def lecun_fill(name, shape, rng):
  """flax's defaults in numpy: kernels N(0, 1 / fan_in), zero biases, identity BatchNorm."""
  if name == 'kernel':
    return rng.normal(0, np.sqrt(1 / np.prod(shape[:-1])), shape).astype(np.float32)
  if name in ('scale', 'var'):
    return np.ones(shape, np.float32)
  return np.zeros(shape, np.float32)


def numpy_variables(shapes, fill, seed=0):
  """Variables with the tree of ``shapes``: ``fill(name, shape, rng)`` per leaf, in tree order.

  ``name`` is the leaf's key ('kernel', 'bias', 'scale', ...); ``rng`` is one
  ``np.random.default_rng(seed)`` shared by all leaves.
  """
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map_with_path(lambda path, s: fill(path[-1].key, s.shape, rng), shapes)


def random_frames(t, size, seed=0):
  """[t, H, W, 3] uint8 noise frames, ``np.random.default_rng(seed)``'s first draw."""
  return np.random.default_rng(seed).integers(0, 255, (t, *size, 3), dtype=np.uint8)


def random_clip(t, size, k, given_at=((0, (True, True)),), seed=0, top=10):
  """Noise frames with box annotations: (images [T,H,W,3], annotation [T,H,W], given [T,K]).

  ``given_at``: (frame, per-object flags); object j's box starts at row ``top + 10 j``.
  """
  h, w = size
  images = random_frames(t, size, seed)
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


def updates_on_one_batch(model, config, variables, batch, loss_fn, steps):
  """``steps`` jitted training updates (the engine's ``make_update``, one device) on the same
  batch; -> the metrics of every step, as floats."""
  from memvos_jax.training import state as state_lib, update as update_lib
  opt = state_lib.make_optimizer(config)
  state = state_lib.create_state(variables, opt)
  mesh = update_lib.make_mesh(jax.devices()[:1])
  step, sh = update_lib.make_update(model, config, opt, mesh, jax.eval_shape(lambda: state),
                                    loss_fn)
  state = jax.device_put(state, sh)
  batch = update_lib.put_batch(batch, mesh)
  rows = []
  for _ in range(steps):
    state, m = step(state, batch)
    rows.append({k: float(v) for k, v in m.items()})
  return rows
