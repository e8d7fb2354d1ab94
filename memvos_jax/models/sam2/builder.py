"""The official ``sam2.build_sam.build_sam2_video_predictor`` entry point, on memvos_jax.

    from memvos_jax.sam2 import build_sam2_video_predictor   # for: from sam2.build_sam import ...
    predictor = build_sam2_video_predictor('configs/sam2.1/sam2.1_hiera_l.yaml',
                                           'sam2.1_hiera_large.pt', device=device)

It returns a ``Sam2Predictor`` (``models/sam2/predictor.py``, also importable
as ``memvos_jax.sam2_predictor.Sam2Predictor``), whose methods
(``init_state``, ``add_new_points_or_box``, ``add_new_mask``,
``propagate_in_video``, ``reset_state``, ``remove_object``, ...) take the
official keywords and return numpy arrays shaped like the official tensors.

The config name only picks the Hiera size: the official yaml files are not
read (their content is built in: ``models.sam2.TRUNKS``, ``Sam2Settings``). SAM 2.1 names
are accepted (``configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml``, with or
without folder and ``.yaml``); the July 2024 SAM 2 (2.0) networks differ in
the object-pointer encodings and are not implemented. The options are the
official builder's: ``apply_postprocessing`` adds the dynamic multimask
fallback and binarised prompted masks for the memory encoder; hole filling
(``fill_hole_area``) is not implemented, as in official installs without
the CUDA extension; ``add_all_frames_to_correct_as_cond`` stays off unless
overridden. ``hydra_overrides_extra`` accepts ``++model.<key>=<value>`` for
the keys in ``OVERRIDABLE``.
"""

import dataclasses
import os
import warnings

from memvos_jax.errors import InputError
from memvos_jax.models.sam2.predictor import Sam2Predictor, Sam2Settings

_SIZES = {'t': 'tiny', 's': 'small', 'b+': 'base_plus', 'l': 'large'}
CONFIGS = {f'sam2.1_hiera_{k}': size for k, size in _SIZES.items()}
_SAM2_0 = {f'sam2_hiera_{k}' for k in _SIZES}

_SETTINGS = tuple(f.name for f in dataclasses.fields(Sam2Settings) if f.name != 'chunk')
_NETWORK = ('image_size', 'sigmoid_scale_for_mem_enc', 'sigmoid_bias_for_mem_enc')
_DECODER = ('dynamic_multimask_via_stability', 'dynamic_multimask_stability_delta',
            'dynamic_multimask_stability_thresh')
# Official options memvos_jax implements with one value only.
_FIXED = {'non_overlap_masks': False, 'clear_non_cond_mem_around_input': False,
          'clear_non_cond_mem_for_multi_obj': False}
OVERRIDABLE = (_SETTINGS + _NETWORK + tuple(f'sam_mask_decoder_extra_args.{k}' for k in _DECODER)
               + tuple(_FIXED) + ('fill_hole_area',))

_POSTPROCESSING_NETWORK = dict(dynamic_multimask_via_stability=True,
                               dynamic_multimask_stability_delta=0.05,
                               dynamic_multimask_stability_thresh=0.98)


def config_size(config_file) -> str:
  """The Hiera size (tiny/small/base_plus/large) of an official SAM 2.1 config name."""
  name = os.path.basename(os.fspath(config_file))
  if name.endswith('.yaml'):
    name = name[:-len('.yaml')]
  if name in CONFIGS:
    return CONFIGS[name]
  if name in _SAM2_0:
    raise InputError(config_file, 'SAM 2 (2.0) networks are not implemented, only SAM 2.1: '
                     f'use configs/sam2.1/{name.replace("sam2_", "sam2.1_")}.yaml with the '
                     'matching sam2.1_hiera_*.pt checkpoint')
  accepted = ', '.join(f'configs/sam2.1/{n}.yaml' for n in CONFIGS)
  raise InputError(config_file, f'unknown SAM 2 config; accepted: {accepted} (or the file '
                   'name alone, with or without .yaml)')


def _value(text: str):
  low = text.strip().lower()
  if low in ('true', 'false'):
    return low == 'true'
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return text


def _options(overrides, apply_postprocessing: bool) -> tuple[dict, dict]:
  """(SAM2 network fields, Sam2Settings fields) the official builder would configure."""
  network = dict(dynamic_multimask_via_stability=False)   # the yaml leaves the decoder default
  settings = dict(binarize_mask_from_pts_for_mem_enc=False,
                  add_all_frames_to_correct_as_cond=False)
  for item in overrides:
    key, sep, text = str(item).lstrip('+').partition('=')
    key = key.strip().removeprefix('model.')
    if not sep or key not in OVERRIDABLE:
      raise InputError('<hydra_overrides_extra>', f'{item!r}: expected ++model.<key>=<value> '
                       f'with key one of {", ".join(OVERRIDABLE)}')
    value = _value(text)
    if key in _SETTINGS:
      settings[key] = value
    elif key in _NETWORK:
      network[key] = value
    elif key.startswith('sam_mask_decoder_extra_args.'):
      network[key.partition('.')[2]] = value
    elif key == 'fill_hole_area':
      if value:
        warnings.warn(f'{item!r}: hole filling is not implemented; masks are not filled (as '
                      'the official predictor without its CUDA extension)', stacklevel=3)
    elif value != _FIXED[key]:
      raise InputError('<hydra_overrides_extra>', f'{item!r}: only {key}={_FIXED[key]} is '
                       'implemented')
  if apply_postprocessing:   # appended after the user's overrides, as officially: they win
    network.update(_POSTPROCESSING_NETWORK)
    settings['binarize_mask_from_pts_for_mem_enc'] = True
  return network, settings


def build_sam2_video_predictor(config_file, ckpt_path=None, device=None, mode='eval',
                               hydra_overrides_extra=(), apply_postprocessing=True,
                               vos_optimized=False, **kwargs) -> Sam2Predictor:
  """A SAM 2.1 video predictor from an official config name and checkpoint.

  Args:
    config_file: official config name, e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``.
    ckpt_path: ``sam2.1_hiera_<size>.pt`` ({"model": state_dict}), a flat .npz
      state_dict or an orbax folder from ``python -m memvos_jax.convert --model sam2``.
    device: accepted and ignored: arrays live on JAX's default device (choose it
      with ``JAX_PLATFORMS``).
    mode: only ``'eval'`` (inference).
    hydra_overrides_extra: ``++model.<key>=<value>`` strings, keys in ``OVERRIDABLE``.
    apply_postprocessing: the official post-processing options (see the module docstring).
    vos_optimized: accepted and ignored: the predictor is always compiled.
    **kwargs: ignored, as officially, except ``dtype`` (memvos_jax's own):
      'float32' (default), 'bfloat16' (as the official predictor under
      ``torch.autocast(dtype=torch.bfloat16)``) or 'auto' (``inference.dtypes``).

  Returns:
    A ``Sam2Predictor``.
  """
  dtype = kwargs.pop('dtype', 'float32')
  del device, vos_optimized, kwargs
  size = config_size(config_file)
  if ckpt_path is None:
    raise InputError(config_file, 'ckpt_path is required (memvos_jax builds no untrained '
                     'predictor): pass the sam2.1_hiera_*.pt checkpoint, a .npz or an orbax folder')
  if mode != 'eval':
    raise InputError('<mode>', f'mode {mode!r}: only "eval" (inference) is implemented')
  network, settings = _options(hydra_overrides_extra, apply_postprocessing)
  return Sam2Predictor.from_checkpoint(os.fspath(ckpt_path), size, network=network,
                                       settings=Sam2Settings(**settings), dtype=dtype)
