"""CLI: convert an official checkpoint into an orbax folder."""

import argparse
import sys

from memvos_jax import registry
from memvos_jax.convert.checkpoint import save_variables
from memvos_jax.errors import CheckpointError, InputError


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument('src', help='official .pth/.pt or .npz state_dict')
  ap.add_argument('out', help='orbax checkpoint folder to write')
  ap.add_argument('--model', default='stcn', help=f'one of {", ".join(registry.names())}')
  args = ap.parse_args(argv)
  try:
    variables = registry.convert_file(args.src, args.model)
  except (CheckpointError, InputError) as e:
    sys.exit(f'error: {e}')
  print(f'wrote {save_variables(args.out, variables)}')


if __name__ == '__main__':
  main()
