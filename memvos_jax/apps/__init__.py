"""The command-line apps, apart from the library they drive.

- ``segment.py``: ``python -m memvos_jax segment`` (a video and its mask(s) to
  masks, overlays, a GIF and a contact sheet).
- ``evaluate.py``: ``python -m memvos_jax evaluate`` (DAVIS J&F with the
  official tool's options).
- ``evaluate_folders.py``: the engine of ``eval.py`` (segment clip folders,
  write masks, score J&F).
- ``visualize.py``: overlays, mp4/GIF writers, contact sheets, per-object stats.
- ``cli_report.py``: one-line errors and warnings for every command.

Light to import: each app loads JAX only when it runs.
"""
