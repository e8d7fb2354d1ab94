"""One folder per model: ``stcn/``, ``stm/``, ``afb_urr/``, ``rpm/``, ``sam2/``.

A model's folder holds everything that is its own: the network
(``modeling.py``), the per-frame inference step (``inference.py``), the
converter of its official checkpoints (``convert.py``), its training pieces
where it is trained here, and its ``__init__`` declaring ``FAMILY``
(``family.Family``). The shared parts live apart: network layers and
backbones in ``memvos_jax/nn``, the memory bank in ``memvos_jax/memory``,
the scan core and the clip driver in ``memvos_jax/inference``, the training
loop in ``memvos_jax/training``. ``memvos_jax.registry`` lists the models.
"""
