"""Training config validation, run before anything is built or compiled.

Unknown keys and wrongly typed overrides are refused by the locked
``ml_collections`` config itself (at flag parsing); this checks values and
their consistency with the machine (``check``, once the devices are known)
and the multi-process keys (``check_launch``, before any process connects).
Every problem raises ``InputError('config.<key>', problem)``.
"""

import os
import re

from memvos_jax.errors import InputError
from memvos_jax.convert import imagenet


def _need(ok: bool, key: str, problem: str):
  if not ok:
    raise InputError(f'config.{key}', problem)


def check_launch(config):
  """The multi-process keys, before ``jax.distributed`` connects anything."""
  t = config.training
  if not t.distributed:
    for key, unset in (('coordinator', ''), ('num_processes', 0), ('process_id', -1)):
      _need(t[key] == unset, f'training.{key}', 'is set but training.distributed is False '
            '(add --config.training.distributed=True)')
    return
  _need(t.initialization_timeout > 0, 'training.initialization_timeout', 'must be > 0 seconds')
  _need(t.collective_timeout > 0, 'training.collective_timeout', 'must be > 0 seconds')
  _need(t.num_processes >= 0, 'training.num_processes', 'must be >= 1 (0: detected)')
  _need(t.process_id >= -1, 'training.process_id', 'must be >= 0 (-1: detected)')
  if t.coordinator:
    host, _, port = t.coordinator.rpartition(':')
    _need(bool(host) and port.isdigit(), 'training.coordinator',
          f'{t.coordinator!r} is not host:port')
  if t.num_processes:
    _need(t.process_id < t.num_processes, 'training.process_id',
          f'{t.process_id} is not one of 0..{t.num_processes - 1} (training.num_processes)')
    _need(t.batch_size % t.num_processes == 0, 'training.batch_size',
          f'{t.batch_size} is not divisible by the {t.num_processes} processes '
          '(training.num_processes): each process feeds an equal slice of the global batch')


def check(config, num_devices: int, num_processes: int = 1, encoders=None, family=None):
  """``encoders``: the network's ImageNet-initialisable encoders (``STCN.encoders``),
  for ``training.backbone_init``; ``family``: the model, whose ``check_config``
  checks its own keys (network, loss) first."""
  t, d = config.training, config.data
  if family is not None and family.check_config is not None:
    family.check_config(config)
  _need(t.stage in (0, 3), 'training.stage', f'{t.stage} is not 0 (static) or 3 (video)')
  _need(t.batch_size > 0, 'training.batch_size', 'must be > 0')
  _need(t.batch_size % num_devices == 0, 'training.batch_size',
        f'{t.batch_size} is not divisible by the {num_devices} devices '
        '(the global batch is split evenly over them)')
  _need(t.batch_size % num_processes == 0, 'training.batch_size',
        f'{t.batch_size} is not divisible by the {num_processes} processes '
        '(each process feeds an equal slice of the global batch)')
  _need(t.num_steps > 0, 'training.num_steps', 'must be > 0')
  _need(t.crop_size >= 32 and t.crop_size % 16 == 0, 'training.crop_size',
        f'{t.crop_size} must be a multiple of 16 and >= 32')
  _need(t.num_frames >= 2, 'training.num_frames', 'must be >= 2')
  _need(t.max_objects >= 1, 'training.max_objects', 'must be >= 1')
  _need(len(t.max_skip_values) == len(t.max_skip_boundaries) + 1, 'training.max_skip_values',
        f'needs one more entry ({len(t.max_skip_values)}) than max_skip_boundaries '
        f'({len(t.max_skip_boundaries)})')
  _need(all(v >= 0 for v in t.max_skip_values), 'training.max_skip_values',
        'must be >= 0 (0: still clips)')
  _need(list(t.max_skip_boundaries) == sorted(t.max_skip_boundaries), 'training.max_skip_boundaries',
        'must be increasing')
  _need(t.learning_rate > 0, 'training.learning_rate', 'must be > 0')
  _need(t.get('optimizer', 'adam') in ('adam', 'adamw'), 'training.optimizer',
        f'{t.get("optimizer")!r} is not adam or adamw')
  _need(t.get('frame_sampling', 'skip') in ('skip', 'shuffle'), 'training.frame_sampling',
        f'{t.get("frame_sampling")!r} is not skip or shuffle')
  _need(t.warmup_steps >= 0, 'training.warmup_steps', 'must be >= 0')
  _need(t.compute_dtype in ('float32', 'bfloat16'), 'training.compute_dtype',
        f'{t.compute_dtype!r} is not float32 or bfloat16')
  _need(t.param_sharding in ('replicated', 'sharded'), 'training.param_sharding',
        f'{t.param_sharding!r} is not replicated or sharded')
  _need(t.init_rng in ('threefry', 'rbg'), 'training.init_rng',
        f'{t.init_rng!r} is not threefry or rbg')
  _need(t.clip_loop in ('auto', 'scan', 'python'), 'training.clip_loop',
        f'{t.clip_loop!r} is not auto, scan or python')
  for key in ('checkpoint_every', 'keep_checkpoints', 'log_every'):
    _need(t[key] > 0, f'training.{key}', 'must be > 0')
  _need(t.eval_every >= 0, 'training.eval_every', 'must be >= 0 (0: no validation)')
  _need(t.eval_frames >= 3, 'training.eval_frames', 'must be >= 3 (J&F skips first and last)')
  _need(t.eval_size == 0 or t.eval_size % 16 == 0, 'training.eval_size',
        'must be 0 or a multiple of 16')
  _need(d.threads >= 0 and d.prefetch >= 0, 'data.threads', 'threads/prefetch must be >= 0')
  _need(d.frame_short_side >= 0, 'data.frame_short_side', 'must be >= 0 (0: native size)')
  _need(d.synthetic_with_real >= 0, 'data.synthetic_with_real', 'must be >= 0')
  lo, hi = d.synthetic_radius
  _need(0 < lo <= hi <= 1, 'data.synthetic_radius',
        f'{tuple(d.synthetic_radius)} is not 0 < lo <= hi <= 1')
  _need(0 <= d.synthetic_enter_prob <= 1, 'data.synthetic_enter_prob', 'must be in [0, 1]')
  lo, hi = d.crop_scale
  _need(0 < lo <= hi <= 1, 'data.crop_scale', f'{tuple(d.crop_scale)} is not 0 < lo <= hi <= 1')
  for key in ('davis_root', 'yvos_root', 'static_root'):
    if d[key]:
      _need(os.path.isdir(d[key]), f'data.{key}', f'folder {d[key]} does not exist')
  if d.tfds_dir and '://' not in d.tfds_dir:   # gs://... is opened by TFDS and array_record
    _need(os.path.isdir(d.tfds_dir), 'data.tfds_dir', f'folder {d.tfds_dir} does not exist')
  for root in filter(None, (r.strip() for r in d.davis_extra_roots.split(','))):
    _need(os.path.isdir(root), 'data.davis_extra_roots', f'folder {root} does not exist')
  _need(d.paste_clips >= 0 and d.paste_length >= 2, 'data.paste_clips',
        'paste_clips must be >= 0 and paste_length >= 2')
  _need(not d.paste_clips or d.davis_root or d.davis_extra_roots or d.davis_tfds,
        'data.paste_clips', 'pasted pseudo-videos are cut from DAVIS clips: set data.davis_root')
  if t.stage == 0 and (d.davis_root or d.yvos_root or d.davis_tfds or d.yvos_tfds):
    raise InputError('config.training.stage', 'stage 0 trains on data.static_root/static_tfds '
                     'only; unset data.davis_root/yvos_root/davis_tfds/yvos_tfds or use stage 3')
  if config.checkpoint:
    _need(os.path.exists(config.checkpoint), 'checkpoint', f'{config.checkpoint} does not exist')
    _need(not t.backbone_init, 'training.backbone_init',
          'is set together with config.checkpoint (whole-model weights); set one of them '
          '(--config.checkpoint= starts from random weights)')
  if t.freeze:
    try:
      re.compile(t.freeze)
    except re.error as e:
      raise InputError('config.training.freeze', f'{t.freeze!r} is not a regex: {e}') from None
  if t.backbone_init:
    for enc, path in imagenet.parse(t.backbone_init, encoders or {}).items():
      _need(os.path.isfile(path), 'training.backbone_init',
            f'{path} ({enc} encoder) does not exist')
