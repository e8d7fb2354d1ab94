"""SAM 2.1 video predictor config: the four released sizes and the official inference options.

Usage: ``get_config('tiny' | 'small' | 'base_plus' | 'large')`` (also t/s/b+/l);
``memvos_jax.sam2_predictor.Sam2Predictor.from_config(config)`` builds the
predictor. The options are those of ``build_sam2_video_predictor`` with its
post-processing (dynamic multimask via stability, binarised prompted masks
for the memory encoder), ``fill_hole_area`` 0 and
``add_all_frames_to_correct_as_cond`` (both as the recorded fixture).
"""

import ml_collections

SIZES = ('tiny', 'small', 'base_plus', 'large')
_ALIASES = {'t': 'tiny', 's': 'small', 'b+': 'base_plus', 'base+': 'base_plus', 'l': 'large'}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  size = _ALIASES.get(arg or 'tiny', arg or 'tiny')
  if size not in SIZES:
    raise ValueError(f'unknown SAM 2 size {arg!r} (known: {", ".join(SIZES)})')
  config = ml_collections.ConfigDict()
  config.model = 'sam2'
  config.size = size
  # Official sam2.1_hiera_<size>.pt ({"model": state_dict}) or a flat .npz.
  config.checkpoint = ''

  config.network = ml_collections.ConfigDict(dict(
      image_size=1024, hidden_dim=256, mem_dim=64, num_maskmem=7, memory_attention_layers=4,
      sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
      dynamic_multimask_via_stability=True, dynamic_multimask_stability_delta=0.05,
      dynamic_multimask_stability_thresh=0.98))

  config.inference = ml_collections.ConfigDict(dict(
      max_obj_ptrs_in_encoder=16, multimask_output_in_sam=True, multimask_min_pt_num=0,
      multimask_max_pt_num=1, multimask_output_for_tracking=True,
      binarize_mask_from_pts_for_mem_enc=True, add_all_frames_to_correct_as_cond=True,
      chunk=4))
  config.lock()
  return config
