"""Video inference: the shared scan core, one per-frame core per model, the clip driver.

  * ``core``: ``FrameInput`` / ``FrameOutput``, ``make_chunk_fn`` (one
    ``jax.lax.scan`` per chunk of frames over a model's step), the settings
    fields every program has, padding, normalisation, positions per frame,
    the annotation override and the output tail (crop, resize, argmax);
  * ``stcn``, ``stm``, ``afb_urr``, ``rpm``, ``sam2``: each model's pure
    ``frame_step(model, params, settings, state, frame)``, its settings,
    state and memory sizing;
  * ``objects``: ``ObjectSlots``, object ids <-> scan slots;
  * ``clip``: ``ClipSegmenter``, the driver over clip folders and arrays.
The network is separate from the cores: a core uses the model only through
its ``apply`` methods. ``families`` ties a network to its core.
"""
