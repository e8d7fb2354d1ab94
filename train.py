"""Training entry point (``python train.py --config configs/stcn.py``).

Not implemented yet: the training system (grain data, sharded jit update,
orbax checkpoints) is tracked by its own issue. This script says so instead
of pretending to train.
"""

import sys


def main():
  sys.exit('train.py: training is not implemented yet (see the training issue); '
           'use eval.py for inference with converted official weights.')


if __name__ == '__main__':
  main()
