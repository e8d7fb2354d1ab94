"""``python -m memvos_jax`` and the ``memvos-jax`` command: ``segment``, ``evaluate``, ``export``.

    python -m memvos_jax segment --video clip.mp4 --mask first.png --out result/
    python -m memvos_jax evaluate --davis_path DAVIS --results_path results/
    python -m memvos_jax export --out exported/ --size 240x432

``segment`` is memvos_jax/apps/segment.py (a video and its mask(s) to masks,
overlays and a contact sheet); ``evaluate`` is memvos_jax/apps/evaluate.py (the
DAVIS J&F evaluation with the official tool's options); ``export`` is
memvos_jax/apps/export.py (the streaming step as StableHLO + weights, docs/export.md).
"""

import os
import sys

USAGE = """usage: {prog} {{segment,evaluate,export}} ...

  segment   segment the objects of a video (or frame folder) from their mask(s)
  evaluate  DAVIS J&F of a results folder (the official davis2017-evaluation options)
  export    the streaming step as a portable StableHLO artifact with its weights

'{prog} COMMAND --help' describes each command."""


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  prog = ('memvos-jax' if os.path.basename(sys.argv[0]).startswith('memvos-jax')
          else 'python -m memvos_jax')
  if argv and argv[0] == 'evaluate':
    from memvos_jax.apps import evaluate   # imported by need: each command loads only its own
    return evaluate.main(argv[1:])
  if argv and argv[0] == 'export':
    from memvos_jax.apps import export
    return export.main(argv[1:])
  if not argv or argv[0] in ('-h', '--help'):
    print(USAGE.format(prog=prog))
    return 0 if argv else 2
  from memvos_jax.apps import segment
  return segment.main(argv)


if __name__ == '__main__':
  sys.exit(main())
