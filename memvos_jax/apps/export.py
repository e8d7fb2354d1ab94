"""Export the streaming step as a portable artifact: ``python -m memvos_jax export``.

    python -m memvos_jax export --out exported/ [--model default] [--checkpoint C]
        [--size 240x432] [--objects 2] [--capacity 20] [--platforms cpu,cuda]
        [--dtype float32] [--bake]
    python exported/runner.py --frames FOLDER --mask first.png --out masks/

One frame is one pure function with static shapes
``step(params, state, image, annotation, given, index) -> (state, mask)``: the
memory is a fixed-capacity pytree, so the whole video path exports once (the
official codes' memory grows with the video and cannot). The folder holds

* ``step.bin``: the serialized ``jax.export`` StableHLO of the streaming step,
  for the chosen platforms (the very program ``memvos_jax.load(...).session``
  runs: the model's per-frame core in a one-frame scan);
* ``weights.npz``: the network's variables as a flat list ``p0, p1, ...``
  (absent with ``--bake``: the weights are constants of the program);
* ``state.npz``: the initial state (empty memory) as ``s0, s1, ...``;
* ``manifest.json``: inputs and outputs (names, shapes, dtypes), frame size,
  object slots, memory capacity, model, weights file and its sha256, platforms;
* ``runner.py``: a copy of ``memvos_jax/apps/export_runner.py``, which runs the
  artifact with jax and numpy alone (frames in, one mask out per frame).

Shapes are static: frames of another size are resized by the runner, objects
beyond ``--objects`` are refused, and the memory evicts FIFO past ``--capacity``
frames (the annotated frames stay pinned). ``--dtype bfloat16`` exports the
library's bf16 program (bf16 leaves stored as uint16 bits; the manifest names
the XLA flags the runner sets, as the library does); float32-only models
(SAM 2, RPM-Net) refuse it. From Python, ``model`` may be a loaded Segmenter.
docs/export.md has the details, which models were checked and the limits.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np

from memvos_jax import api, registry
from memvos_jax.errors import InputError
from memvos_jax.inference import dtypes
from memvos_jax.inference.core import FrameInput

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'export_runner.py')
PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')
BF16_NOTE = ('; bfloat16 leaves as their uint16 bits (view them as the program\'s '
             'input dtype, Exported.in_avals)')


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def _spec(name, a) -> dict:
  return {'name': name, 'shape': list(np.shape(a)), 'dtype': str(np.asarray(a).dtype)}


def _segmenter(model, checkpoint, variant, dtype, settings):
  """(Segmenter, model name) for ``export``: a name loaded as ``memvos_jax.load`` does
  (a float32-only model asked for bfloat16 is refused in one line, before loading), or
  a loaded Segmenter as it is."""
  if isinstance(model, api.Segmenter):
    if checkpoint or variant or settings:
      raise TypeError('export(model=Segmenter): checkpoint, variant and settings belong to '
                      'memvos_jax.load; the Segmenter is exported as it is')
    own = model.clip.dtype      # 'auto' resolved
    if dtype not in (None, own):
      raise InputError('--dtype', f'{dtype} asked for a Segmenter loaded in {own} (load it '
                       f'with dtype={dtype!r})')
    return model, registry.of(model.model).name
  if model in registry.names() and dtype is not None:
    try:
      registry.get(model).make_settings(dtype=dtype)
    except ValueError as e:   # SAM 2, RPM: no bfloat16 path in the library, none to export
      raise InputError('--dtype', f'{e}; export {model} in float32') from None
  if dtype is not None:
    settings = dict(settings, dtype=dtype)
  return api.load(model, checkpoint, variant=variant, quiet=True, **settings), model


def _stored(a) -> np.ndarray:
  """A leaf as .npz stores it: bfloat16 (which numpy cannot name) as its uint16 bits;
  the runner views it back as the program's input dtype."""
  a = np.asarray(a)
  return a.view(np.uint16) if a.dtype == jnp.bfloat16 else a


def export(out: str, model='default', checkpoint: str = '', size=(240, 432),
           objects: int = 2, capacity: int = 20, platforms=('cpu',), dtype: str | None = None,
           bake: bool = False, variant: str | None = None, **settings) -> dict:
  """Writes the artifact folder ``out`` (see the module docstring); returns the manifest.

  ``model``: a model name (``memvos_jax.registry.names()``), loaded with
  ``checkpoint`` / ``variant`` / ``dtype`` / ``settings`` as ``memvos_jax.load``
  does, or a loaded ``memvos_jax.api.Segmenter`` (e.g. one built at another
  network setting, such as a smaller SAM 2 ``image_size``), exported as it is.
  ``size`` = (H, W) of the frames the step takes, ``objects`` the object slots,
  ``capacity`` the memory frames; ``settings`` override the model's inference
  settings (e.g. ``mem_every``, ``top_k``) as in ``memvos_jax.load``; ``dtype``
  (default: the model config's, float32) 'bfloat16' exports the library's bf16
  program (models with a bf16 path: stcn, stm, afb_urr, default).
  """
  size = tuple(int(s) for s in size)
  bad = [p for p in platforms if p not in PLATFORMS]
  if bad:
    raise InputError('--platforms', f'unknown platform(s) {", ".join(bad)} '
                     f'(known: {", ".join(PLATFORMS)})')
  if objects < 1 or capacity < 1 or min(size) < 16:
    raise InputError('export', f'objects={objects}, capacity={capacity} and size={size} must '
                     'be >= 1, >= 1 and >= 16 px')
  seg, model = _segmenter(model, checkpoint, variant, dtype, settings)
  st, variables, state0, chunk_fn = seg.session(size, objects, capacity).program()
  param_leaves, param_def = jax.tree.flatten(variables)
  state_leaves, state_def = jax.tree.flatten(state0)

  def step(params, state, image, annotation, given, index):
    # image [H, W, 3] uint8, annotation [H, W] uint8 slot map, given [K] bool, index [] int32
    frame = FrameInput(image=image[None], annotation=annotation[None], given=given[None],
                       index=index[None], is_last=jnp.zeros((1,), bool),
                       valid=jnp.ones((1,), bool))
    new_state, out = chunk_fn(jax.tree.unflatten(param_def, params),
                              jax.tree.unflatten(state_def, state), frame)
    return jax.tree.leaves(new_state), out.mask[0]                 # mask [H, W] uint8 slots

  frame_args = (jax.ShapeDtypeStruct(size + (3,), jnp.uint8),
                jax.ShapeDtypeStruct(size, jnp.uint8),
                jax.ShapeDtypeStruct((objects,), jnp.bool_),
                jax.ShapeDtypeStruct((), jnp.int32))
  state_args = [jax.ShapeDtypeStruct(np.shape(a), a.dtype) for a in state_leaves]
  if bake:
    fn = jax.jit(lambda state, *f: step(param_leaves, state, *f))
    exported = jax.export.export(fn, platforms=tuple(platforms))(state_args, *frame_args)
  else:
    param_args = [jax.ShapeDtypeStruct(np.shape(a), a.dtype) for a in param_leaves]
    exported = jax.export.export(jax.jit(step), platforms=tuple(platforms))(
        param_args, state_args, *frame_args)

  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'step.bin'), 'wb') as f:
    f.write(exported.serialize())
  if not bake:
    np.savez(os.path.join(out, 'weights.npz'),
             **{f'p{i}': _stored(a) for i, a in enumerate(param_leaves)})
  elif os.path.exists(os.path.join(out, 'weights.npz')):
    os.remove(os.path.join(out, 'weights.npz'))
  np.savez(os.path.join(out, 'state.npz'),
           **{f's{i}': _stored(a) for i, a in enumerate(state_leaves)})
  shutil.copyfile(RUNNER, os.path.join(out, 'runner.py'))
  # What ``memvos_jax.load`` read (Segmenter.weights): a path, or its random-init note.
  weights = getattr(seg, 'weights', None)
  weights = weights if isinstance(weights, str) else '(a Segmenter without .weights)'
  manifest = {
      'format': 'memvos_jax.export/1',
      'model': model, 'variant': variant or '', 'dtype': st.dtype,
      'weights': os.path.abspath(weights) if os.path.exists(weights) else weights,
      'weights_sha256': _sha256(weights) if os.path.isfile(weights) else '',
      'frame_size': list(size), 'objects': objects, 'memory_capacity': capacity,
      'settings': {k: v for k, v in dataclasses.asdict(st).items()
                   if isinstance(v, (int, float, str, bool)) or v is None},
      'platforms': list(platforms), 'baked_weights': bool(bake),
      'jax_version': jax.__version__,
      # What the library compiles a bf16 program with (the runner sets it likewise).
      'xla_flags': dtypes.ONEDNN_FLAG if st.dtype == 'bfloat16' else '',
      'calling_convention': 'step(params, state, image, annotation, given, index) -> '
                            '(state, mask); params absent when baked_weights',
      'inputs': ([] if bake else [{'name': 'params', 'leaves': len(param_leaves),
                                   'file': 'weights.npz (p0, p1, ...)' + BF16_NOTE}])
                + [{'name': 'state', 'leaves': len(state_leaves),
                    'file': 'state.npz (s0, s1, ...): the empty memory' + BF16_NOTE},
                   _spec('image', np.zeros(size + (3,), np.uint8)) | {
                       'doc': 'RGB frame'},
                   _spec('annotation', np.zeros(size, np.uint8)) | {
                       'doc': 'object-slot map: 0 background, slot i+1 = object slot i'},
                   _spec('given', np.zeros(objects, bool)) | {
                       'doc': 'slots whose mask this frame gives (pinned in memory)'},
                   _spec('index', np.zeros((), np.int32)) | {'doc': 'frame index'}],
      'outputs': [{'name': 'state', 'leaves': len(state_leaves)},
                  _spec('mask', np.zeros(size, np.uint8)) | {
                      'doc': 'predicted slot map (0 background)'}],
      'files': {name: os.path.getsize(os.path.join(out, name))
                for name in ('step.bin', 'weights.npz', 'state.npz', 'runner.py')
                if os.path.exists(os.path.join(out, name))},
  }
  with open(os.path.join(out, 'manifest.json'), 'w') as f:
    json.dump(manifest, f, indent=1)
  return manifest


def _size(text: str) -> tuple[int, int]:
  try:
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not HxW, e.g. 240x432') from None


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog='python -m memvos_jax export',
                              description='Export the streaming step (StableHLO + weights).')
  p.add_argument('--out', required=True, help='artifact folder')
  p.add_argument('--model', default='default')
  p.add_argument('--checkpoint', default='')
  p.add_argument('--variant', default=None)
  p.add_argument('--size', type=_size, default=(240, 432), help='HxW of the frames')
  p.add_argument('--objects', type=int, default=2)
  p.add_argument('--capacity', type=int, default=20, help='memory frames')
  p.add_argument('--platforms', default='cpu', help='comma list: cpu, cuda, rocm, tpu')
  p.add_argument('--dtype', default=None, choices=('float32', 'bfloat16'),
                 help="default: the model config's (float32)")
  p.add_argument('--bake', action='store_true', help='weights as constants of the program')
  args = p.parse_args(argv)
  try:
    m = export(args.out, args.model, args.checkpoint, args.size, args.objects, args.capacity,
               tuple(filter(None, args.platforms.split(','))), args.dtype, args.bake,
               args.variant)
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  total = sum(m['files'].values()) / 2 ** 20
  print(f'{args.out}: {m["model"]} step at {m["frame_size"][0]}x{m["frame_size"][1]}, '
        f'{m["objects"]} object(s), memory {m["memory_capacity"]} frames, '
        f'{"/".join(m["platforms"])}, {m["dtype"]}; {total:.1f} MB. '
        f'Run: python {os.path.join(args.out, "runner.py")} --frames F --mask M --out O')
  return 0


if __name__ == '__main__':
  sys.exit(main())
