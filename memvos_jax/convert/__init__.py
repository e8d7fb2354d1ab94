"""Official PyTorch checkpoints -> Flax variables (strict: every key accounted for).

One module per model (``stcn``, ``stm``, ``afb_urr``, ``sam2``, ``rpm``), each
with ``convert(state_dict, model, source)``; ``torch_pickle`` reads ``.pth``
files without torch. ``families.loading.convert_file`` converts a file for a
named model; ``python -m memvos_jax.convert --model stcn SRC.pth OUT_DIR``
converts and saves an orbax checkpoint that ``eval.py`` loads directly.
"""
