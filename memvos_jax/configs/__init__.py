"""The ml_collections configs of every model, importable from an installed package.

One module per config (``default``, ``stcn``, ``stm``, ``afb_urr``, ``sam2``,
``rpm``), each with ``get_config(arg=None)`` (``arg``: the variant, e.g.
``'tiny'``). ``memvos_jax.registry`` lists them with their models
(``registry.config('stcn', 'tiny')``, ``registry.names()``); the top-level
``configs/<name>.py`` files of a checkout import the same ``get_config`` so
that ``train.py``/``eval.py --config configs/stcn.py:tiny`` works as before.
``common`` holds what they share (variant parsing, every model's
``runlocal`` variant, the eval.py data block). Importing a config loads
neither JAX nor a model.

    from memvos_jax.configs import stcn
    config = stcn.get_config('tiny')
"""
