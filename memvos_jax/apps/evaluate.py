"""DAVIS 2017 semi-supervised evaluation with the official tool's interface.

    python -m memvos_jax evaluate --davis_path ROOT --results_path RESULTS [--set val]

``ROOT`` holds ``Annotations/480p/<seq>/*.png`` and ``ImageSets/2017/<set>.txt``
(``JPEGImages`` is not needed); ``RESULTS`` holds ``<seq>/<frame>.png``. Like the
official ``evaluation_method.py`` it writes ``global_results-<set>.csv`` and
``per-sequence_results-<set>.csv`` into ``RESULTS``, prints both tables as
pandas does, and reuses existing CSVs instead of recomputing them (pass
``--recompute`` to ignore them). Differences: ``--task`` defaults to
semi-supervised (the only task supported), unknown flags are errors, and bad
input stops with one line naming the sequence and frame (exit code 1).
"""

import argparse
import math
import os
import re
import sys
import time

import tqdm

from memvos_jax.errors import InputError
from memvos_jax.metrics import summary
from memvos_jax.metrics.davis import evaluate_davis

_DECIMAL = re.compile(r'^\s*[+-]?[0-9]+\.[0-9]*$')


def _format_floats(values: list[float]) -> list[str]:
  """A float column as pandas' default ``to_string`` formats it (6 digits, shared trimming)."""
  finite = [abs(v) for v in values if math.isfinite(v)]
  sci = any(v > 1e6 for v in finite) or any(0 < v < 1e-6 for v in finite)
  out = []
  for v in values:
    if math.isnan(v):
      out.append('NaN')
    elif math.isinf(v):
      out.append('inf' if v > 0 else '-inf')
    else:
      out.append(f'{v:.6e}' if sci else f'{v:.6f}')
  if sci:
    return out
  def trimmable(cells: list[str]) -> bool:
    numbers = [x for x in cells if _DECIMAL.match(x)]
    return bool(numbers) and all(x.endswith('0') for x in numbers)
  while trimmable(out):
    out = [x[:-1] if _DECIMAL.match(x) else x for x in out]
  return [x + '0' if _DECIMAL.match(x) and x.endswith('.') else x for x in out]


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
  """``pandas.DataFrame(rows).to_string(index=False)`` for string and float columns."""
  cols = []
  for c in columns:
    values = [r[c] for r in rows]
    if values and all(isinstance(v, str) for v in values):
      cells, header = values, c
    else:
      cells, header = _format_floats([float(v) for v in values]), ' ' + c
    width = max([len(header)] + [len(x) for x in cells])
    cols.append([header.rjust(width)] + [x.rjust(width) for x in cells])
  return '\n'.join(' '.join(col[i] for col in cols) for i in range(len(rows) + 1))


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='python -m memvos_jax evaluate',
                              description=__doc__.split('\n')[0])
  p.add_argument('--davis_path', required=True,
                 help='DAVIS folder with Annotations/480p/<seq> and ImageSets/2017/<set>.txt')
  p.add_argument('--results_path', required=True, help='folder of <seq>/<frame>.png results')
  p.add_argument('--set', default='val', help='subset: ImageSets/2017/<set>.txt (default val)')
  p.add_argument('--task', default='semi-supervised', choices=['semi-supervised', 'unsupervised'],
                 help='only semi-supervised is supported (the official default is unsupervised)')
  p.add_argument('--sequences', nargs='+', default=None, help='score only these sequences')
  p.add_argument('--fixed_decay', action='store_true',
                 help='Decay with correct bins past 255 frames (the official casts them to uint8)')
  p.add_argument('--recompute', action='store_true',
                 help='ignore CSVs already in --results_path (the official tool reuses them; '
                 'needed after changing the results, --fixed_decay or --sequences)')
  return p


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  if args.task != 'semi-supervised':
    print('error: only --task semi-supervised is supported (unsupervised needs proposal '
          'matching, which this package does not implement)', file=sys.stderr)
    return 2
  t0 = time.time()
  g_path = os.path.join(args.results_path, f'global_results-{args.set}.csv')
  s_path = os.path.join(args.results_path, f'per-sequence_results-{args.set}.csv')
  if not args.recompute and os.path.exists(g_path) and os.path.exists(s_path):
    print('Using precomputed results...')
    _, g_rows = summary.read_csv(g_path)
    _, s_rows = summary.read_csv(s_path)
  else:
    print(f'Evaluating sequences for the {args.task} task...')
    try:
      if not os.path.isdir(args.results_path):
        raise InputError(args.results_path, 'results folder not found')
      bar = lambda seqs: tqdm.tqdm(seqs, file=sys.stderr)
      g_row, s_rows = evaluate_davis(args.davis_path, args.results_path, args.set, args.sequences,
                                     args.fixed_decay, progress=bar)
    except InputError as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
    g_rows = [g_row]
    with open(g_path, 'w') as f:
      f.write(summary.csv_text(g_rows, summary.GLOBAL_COLUMNS))
    print(f'Global results saved in {g_path}')
    with open(s_path, 'w') as f:
      f.write(summary.csv_text(s_rows, summary.SEQUENCE_COLUMNS))
    print(f'Per-sequence results saved in {s_path}')
  rule = '-' * 27
  sys.stdout.write(f'{rule} Global results for {args.set} {rule}\n')
  print(format_table(g_rows, summary.GLOBAL_COLUMNS))
  sys.stdout.write(f'\n---------- Per sequence results for {args.set} ----------\n')
  print(format_table(s_rows, summary.SEQUENCE_COLUMNS))
  sys.stdout.write('\nTotal time:' + str(time.time() - t0) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
