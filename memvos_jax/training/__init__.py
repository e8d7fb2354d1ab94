"""The training engine that ``train.py`` runs through a model's own ``train(config, workdir)``.

  * ``trainer``: the supervised loop (config and data checks, mesh, restore or
    initialise, jitted updates, metrics, checkpoints, validation, summary),
    handed a model's family, batch loss and BatchNorm calibration
    (STCN's: ``memvos_jax/models/stcn/``);
  * ``update``: the 1-D data mesh, state and batch shardings, the jitted step;
  * ``state``: TrainState, the optimiser and learning-rate schedule, initial variables;
  * ``checkpointing``, ``export``: orbax checkpoints and the weights eval.py reads;
  * ``distributed``: several processes (docs/multihost.md);
  * ``evaluation``: held-out J&F during training; ``writers``: TensorBoard and JSON lines;
  * ``config_check``: config values checked before anything is built.

A model's own training pieces (STCN's clip unroll and loss, RPM-Net's
self-supervised trainer) live in its folder under ``memvos_jax/models/``.
"""
