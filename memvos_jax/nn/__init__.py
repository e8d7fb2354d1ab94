"""Network parts shared by the models (Flax linen).

  * ``layers``: convolutions, pools, resizes, residual and fusion blocks;
  * ``resnet``, ``mobilenet``, ``efficientnet``: the backbones, and
    ``backbones``: them by name (``SPECS``: how an ImageNet file maps onto each);
  * ``decoder``: the STM-style refinement decoder (stride 16 -> 1 with skips);
  * ``aggregate``: soft aggregation of per-object probabilities.
A part only one model uses lives in that model's folder (``memvos_jax/models/<name>/``).
"""
