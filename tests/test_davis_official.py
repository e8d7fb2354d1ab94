"""``python -m memvos_jax evaluate`` against numbers recorded from the official
davis2017-evaluation.

tests/data/davis_eval holds a small DAVIS-layout set (ground truth from the real
bike/judo annotations plus synthetic one-pixel, border, void, empty-result and
> 255-frame sequences) with perturbed results, and in ``expected/`` the official
tool's CSVs, stdout and full-precision per-object values (see build_fixture.py).
"""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from memvos_jax.apps import evaluate
from memvos_jax.errors import InputError
from memvos_jax.metrics import evaluate_davis

from conftest import CHILD_TIMEOUT_S

DATA = pathlib.Path(__file__).resolve().parent / 'data' / 'davis_eval'
DAVIS = DATA / 'davis'
EXPECTED = DATA / 'expected'
SETS = ('val', 'train', 'test-dev')
REPO = pathlib.Path(__file__).resolve().parents[1]


def _official(set_name):
  full = json.loads((EXPECTED / f'official_full-{set_name}.json').read_text())
  j, f = full['J'], full['F']
  glob = {'J&F-Mean': (np.mean(j['M']) + np.mean(f['M'])) / 2, 'J-Mean': np.mean(j['M']),
          'J-Recall': np.mean(j['R']), 'J-Decay': np.mean(j['D']), 'F-Mean': np.mean(f['M']),
          'F-Recall': np.mean(f['R']), 'F-Decay': np.mean(f['D'])}
  per = {name: {'J-Mean': j['M'][i], 'J-Recall': j['R'][i], 'J-Decay': j['D'][i],
                'F-Mean': f['M'][i], 'F-Recall': f['R'][i], 'F-Decay': f['D'][i]}
         for i, name in enumerate(j['objects'])}
  return glob, per


def _close(a, b, tol):
  return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.mark.parametrize('set_name', SETS)
def test_matches_official_values(set_name):
  glob, per = _official(set_name)
  ours_g, ours_rows = evaluate_davis(str(DAVIS), str(DATA / 'results'), set_name)
  for k, v in glob.items():
    assert _close(ours_g[k], v, 1e-4), (k, ours_g[k], v)
  assert [r['Sequence'] for r in ours_rows] == list(per)
  for row in ours_rows:
    for k, v in per[row['Sequence']].items():
      assert _close(row[k], v, 1e-3), (row['Sequence'], k, row[k], v)


def _run_cli(results, set_name, *extra):
  cmd = [sys.executable, '-m', 'memvos_jax', 'evaluate', '--davis_path', str(DAVIS),
         '--results_path', str(results), '--set', set_name, *extra]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S)


def _tables(stdout):
  """The printed tables, without the lines that hold paths or times."""
  keep = stdout.split('Total time:')[0].splitlines()
  return [line for line in keep if 'saved in' not in line]


@pytest.mark.parametrize('set_name', SETS)
def test_cli_writes_official_csvs_and_tables(tmp_path, set_name):
  results = tmp_path / 'results'
  shutil.copytree(DATA / 'results', results)
  r = _run_cli(results, set_name)
  assert r.returncode == 0, r.stderr
  for name in (f'global_results-{set_name}.csv', f'per-sequence_results-{set_name}.csv'):
    assert (results / name).read_text() == (EXPECTED / name).read_text(), name
  official_out = (EXPECTED / f'official_stdout-{set_name}.txt').read_text()
  assert _tables(r.stdout) == _tables(official_out)
  # like the official tool, a second run reuses the CSVs (and prints them as pandas does)
  r2 = _run_cli(results, set_name)
  assert r2.returncode == 0 and r2.stdout.startswith('Using precomputed results...')
  assert 'Global results for' in r2.stdout and f'{set_name}' in r2.stdout


def test_fixed_decay_differs_only_past_255_frames():
  g_off, rows_off = evaluate_davis(str(DAVIS), str(DATA / 'results'), 'val')
  g_fix, rows_fix = evaluate_davis(str(DAVIS), str(DATA / 'results'), 'val', fixed_decay=True)
  assert rows_off == rows_fix and g_off == g_fix
  for set_name in ('train', 'test-dev'):          # 400 and 256 scored frames
    g_off, _ = evaluate_davis(str(DAVIS), str(DATA / 'results'), set_name)
    g_fix, _ = evaluate_davis(str(DAVIS), str(DATA / 'results'), set_name, fixed_decay=True)
    assert not math.isnan(g_fix['J-Decay']) and g_fix['J-Decay'] != g_off['J-Decay']
    assert g_fix['J-Mean'] == g_off['J-Mean']


def test_unsupervised_is_refused(tmp_path):
  r = _run_cli(tmp_path, 'val', '--task', 'unsupervised')
  assert r.returncode == 2 and 'only --task semi-supervised' in r.stderr


# ---------------------------------------------------------------- bad input

@pytest.fixture()
def results(tmp_path):
  out = tmp_path / 'results'
  shutil.copytree(DATA / 'results', out)
  return out


def _save(path, labels):
  im = Image.fromarray(labels.astype(np.uint8), mode='P')
  im.putpalette([c for i in range(256) for c in (i, i, i)])   # else Pillow may remap indices
  im.save(path)


def _evaluate(results):
  return evaluate_davis(str(DAVIS), str(results), 'val')


def test_missing_sequence(results):
  shutil.rmtree(results / 'judo')
  with pytest.raises(InputError, match=r'judo: sequence judo: results folder not found'):
    _evaluate(results)


def test_missing_frame_names_sequence_and_frame(results):
  os.remove(results / 'judo' / '00004.png')
  with pytest.raises(InputError, match=r'00004\.png: sequence judo frame 00004: result not found'):
    _evaluate(results)
  r = _run_cli(results, 'val')
  assert r.returncode == 1 and 'sequence judo frame 00004: result not found' in r.stderr
  assert not (results / 'global_results-val.csv').exists()


def test_first_and_last_result_frames_are_optional(results):
  os.remove(results / 'bike' / '00000.png')
  os.remove(results / 'bike' / '00009.png')
  _evaluate(results)


def test_wrong_size(results):
  _save(results / 'bike' / '00003.png', np.zeros((240, 426)))
  with pytest.raises(InputError, match=r'sequence bike frame 00003: result is 426x240 but the '
                     r'annotation is 427x240'):
    _evaluate(results)


def test_unknown_object_id(results):
  m = np.array(Image.open(results / 'tiny' / '00005.png'))
  m[0, 0] = 4                                     # the first tiny frame has ids 1..3
  _save(results / 'tiny' / '00005.png', m)
  with pytest.raises(InputError, match=r'sequence tiny frame 00005: object id\(s\) \[4\] not in '
                     r'the ground truth'):
    _evaluate(results)


def test_rgb_result_is_refused(results):
  Image.new('RGB', (427, 240)).save(results / 'bike' / '00002.png')
  with pytest.raises(InputError, match=r'single-channel .* got mode RGB'):
    _evaluate(results)


def test_missing_set_file(results):
  with pytest.raises(InputError, match=r'sequence list for set .nope. not found'):
    evaluate_davis(str(DAVIS), str(results), 'nope')


def test_format_table_matches_pandas():
  rows = [{'Sequence': 'bike_1', 'J-Mean': 0.5, 'F-Mean': 1.0},
          {'Sequence': 'judo-long_12', 'J-Mean': 0.123456789, 'F-Mean': 0.25}]
  assert evaluate.format_table(rows, ('Sequence', 'J-Mean', 'F-Mean')) == (
      '    Sequence   J-Mean  F-Mean\n      bike_1 0.500000    1.00\njudo-long_12 0.123457    0.25')
  g = [{'a': 0.81234567, 'abcdef': -0.0123, 'b': float('nan')}]
  assert evaluate.format_table(g, ('a', 'abcdef', 'b')) == (
      '       a  abcdef   b\n0.812346 -0.0123 NaN')
