"""Video inference shared by every model: the scan core, object slots, the clip driver.

  * ``core``: ``FrameInput`` / ``FrameOutput``, ``make_chunk_fn`` (one
    ``jax.lax.scan`` per chunk of frames over a model's step), the settings
    fields every program has, padding, normalisation, positions per frame,
    the annotation override and the output tail (crop, resize, argmax);
  * ``objects``: ``ObjectSlots``, object ids <-> scan slots;
  * ``clip``: ``ClipSegmenter``, the driver over clip folders and arrays,
    handed a model's ``Family``.
Each model's pure ``frame_step(model, params, settings, state, frame)``, its
settings, state and memory sizing live in its folder
(``memvos_jax/models/<name>/inference.py``); a step uses the network only
through its ``apply`` methods.
"""
