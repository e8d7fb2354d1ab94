"""The checkpoint machinery every model's converter shares (strict: every key accounted for).

``torch_pickle`` reads ``.pth`` files without torch; ``common`` maps a torch
state_dict onto Flax variables (renames, transposes, the strictness report);
``checkpoint`` saves and restores Flax variables (orbax folders, flat
``.npz``); ``imagenet`` loads torchvision ImageNet weights into a backbone.
Each model's own converter is ``memvos_jax/models/<name>/convert.py``
(``convert(state_dict, model, source)``); ``registry.convert_file`` converts a
file for a named model, and ``python -m memvos_jax.convert --model stcn
SRC.pth OUT_DIR`` converts and saves an orbax checkpoint that ``eval.py``
loads directly.
"""
