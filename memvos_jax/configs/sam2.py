"""SAM 2.1 config: the four released sizes, the official inference options, the clip driver.

Evaluation (the official semi-supervised VOS protocol, ``tools/vos_inference.py``)::

  python eval.py --config configs/sam2.py:tiny --config.checkpoint=sam2.1_hiera_tiny.pt \
      --config.data.root=DAVIS/2017/trainval --workdir=out

Variants: ``get_config('tiny' | 'small' | 'base_plus' | 'large')`` (also
t/s/b+/l; ``runlocal``: tiny with small inference chunks); ``network.size``
must match the checkpoint. ``checkpoint`` is an
official ``sam2.1_hiera_<size>.pt`` ({"model": state_dict}), a flat .npz, or
an orbax folder (``python -m memvos_jax.convert --model sam2``).
``memvos_jax.models.sam2.predictor.Sam2Predictor.from_config(config)`` builds the
interactive predictor from the same config. The options are those of
``build_sam2_video_predictor`` with its post-processing (dynamic multimask
via stability, binarised prompted masks for the memory encoder),
``fill_hole_area`` 0 and ``add_all_frames_to_correct_as_cond``.
"""

import ml_collections

from memvos_jax.configs import common

SIZES = ('tiny', 'small', 'base_plus', 'large')
_ALIASES = {'t': 'tiny', 's': 'small', 'b+': 'base_plus', 'base+': 'base_plus', 'l': 'large'}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  local = arg == 'runlocal'          # the smallest size, small inference chunks
  arg = 'tiny' if local else arg
  size = _ALIASES.get(arg or 'tiny', arg or 'tiny')
  if size not in SIZES:
    raise ValueError(f'configs/sam2.py: unknown SAM 2 size {arg!r} '
                     f'(known: {", ".join(SIZES)}, runlocal)')
  config = ml_collections.ConfigDict()
  config.model = 'sam2'
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      size=size, image_size=1024, hidden_dim=256, mem_dim=64, num_maskmem=7,
      memory_attention_layers=4, sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
      dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
      dynamic_multimask_stability_thresh=0.98))

  config.data = common.eval_data()

  config.inference = ml_collections.ConfigDict(dict(
      max_obj_ptrs_in_encoder=16, multimask_output_in_sam=True, multimask_min_pt_num=0,
      multimask_max_pt_num=1, multimask_output_for_tracking=True,
      binarize_mask_from_pts_for_mem_enc=True, add_all_frames_to_correct_as_cond=True))
  common.scan_options(config.inference, chunk=4)  # chunk, dtype, batch_clips
  config.inference.max_objects = 0        # 0 = the clip's object count (static per clip)
  # Conditioning (prompted) frames kept per object; 0 = what the protocol needs
  # (each object is given once: 1). Tracked frames: a fixed ring of 15.
  config.inference.memory_capacity = 0
  if local:
    common.runlocal(config)
  config.lock()
  return config
