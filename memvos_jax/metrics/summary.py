"""Per-object statistics (Mean, Recall, Decay) and the global / per-sequence tables.

Matches the official ``db_statistics`` and ``evaluation_method.py``:

* Mean = nanmean of the per-frame values, Recall = fraction of frames > 0.5.
* Decay = mean of the first quarter minus mean of the last quarter, where the
  quarter boundaries are ``ids = round(linspace(1, n, 5) + 1e-10) - 1`` and bin
  i is ``values[ids[i] : ids[i + 1] + 1]`` (neighbouring bins share an edge).
* Global row: the mean over all objects of every statistic; J&F-Mean is
  (mean J-Mean + mean F-Mean) / 2. CSVs are written as pandas
  ``to_csv(index=False, float_format="%.3f")`` writes them (NaN as empty).

Official Decay bug (reproduced by default): the official code casts ``ids`` to
uint8, so for n > 255 evaluated frames the edges wrap modulo 256 (and the
``ids[i + 1] + 1`` stop overflows to 0 when an edge is 255). A bin can then be
empty (Decay = NaN, e.g. n = 256) or cover the wrong frames (e.g. n = 400:
the last quarter becomes frames 43..143). ``fixed_decay=True`` uses the
intended integer edges; for n <= 255 both give the same value.
"""

import csv
import io
import warnings

import numpy as np

GLOBAL_COLUMNS = ('J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay')
SEQUENCE_COLUMNS = ('Sequence', 'J-Mean', 'F-Mean')


def decay_bins(n: int, fixed_decay: bool = False) -> list[tuple[int, int]]:
  """The four (start, stop) slices the official Decay uses for n per-frame values."""
  ids = np.round(np.linspace(1, n, 5) + 1e-10) - 1
  if fixed_decay:
    edges = ids.astype(np.int64)
    return [(int(edges[i]), int(edges[i + 1]) + 1) for i in range(4)]
  edges = ids.astype(np.int64) % 256            # numpy's float -> uint8 cast wraps
  return [(int(edges[i]), (int(edges[i + 1]) + 1) % 256) for i in range(4)]


def _nanmean(values: np.ndarray) -> float:
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', category=RuntimeWarning)
    return float(np.nanmean(values))


def statistics(values: np.ndarray, fixed_decay: bool = False) -> tuple[float, float, float]:
  """(Mean, Recall, Decay) of one object's per-frame J or F values."""
  values = np.asarray(values, np.float64)
  mean = _nanmean(values)
  recall = _nanmean(values > 0.5)
  bins = [values[a:b] for a, b in decay_bins(len(values), fixed_decay)]
  decay = _nanmean(bins[0]) - _nanmean(bins[3])
  return mean, recall, decay


def object_row(name: str, j: np.ndarray, f: np.ndarray, fixed_decay: bool = False) -> dict:
  """One object's statistics: Sequence (``<seq>_<id>``), J-/F- Mean, Recall, Decay."""
  jm, jr, jd = statistics(j, fixed_decay)
  fm, fr, fd = statistics(f, fixed_decay)
  return {'Sequence': name, 'J-Mean': jm, 'F-Mean': fm, 'J-Recall': jr, 'J-Decay': jd,
          'F-Recall': fr, 'F-Decay': fd}


def global_row(rows: list[dict]) -> dict:
  """The official global row: every statistic averaged over all objects of all sequences."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', category=RuntimeWarning)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in GLOBAL_COLUMNS[1:]}
  return {'J&F-Mean': (mean['J-Mean'] + mean['F-Mean']) / 2.0, **mean}


def _fmt(value) -> str:
  if isinstance(value, str):
    return value
  return '' if np.isnan(value) else '%.3f' % value


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
  """CSV as pandas ``to_csv(index=False, float_format='%.3f')`` writes it."""
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(columns)
  for row in rows:
    writer.writerow([_fmt(row[c]) for c in columns])
  return buf.getvalue()


def read_csv(path: str) -> tuple[tuple[str, ...], list[dict]]:
  """Read a table written by ``csv_text`` (or the official tool): floats, '' as NaN."""
  with open(path, newline='') as f:
    reader = csv.reader(f)
    columns = tuple(next(reader))
    rows = []
    for rec in reader:
      row = {}
      for c, v in zip(columns, rec):
        row[c] = v if c == 'Sequence' else (float(v) if v != '' else float('nan'))
      rows.append(row)
  return columns, rows
