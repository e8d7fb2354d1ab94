"""Shared test fixtures. Tests needing ../shared skip with a clear reason."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
sys.path.insert(0, str(REPO))


def metric_rows(workdir) -> dict:
  """step -> (loss, global batch indices) of the last write of each step in metrics.jsonl."""
  out = {}
  for line in open(pathlib.Path(workdir) / 'metrics.jsonl'):
    r = json.loads(line)
    if 'loss' in r:
      out[r['step']] = (r['loss'], r['indices'])
  return out


def need_shared(*parts):
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'needs {path} (the shared fixtures beside the repo)')
  return path


def official_state(name: str) -> dict:
  """Fixture ``name``'s official-format state_dict, rebuilt by make_checkpoint (no torch)."""
  need_shared('fixtures', name, 'recipe.json')
  sys.path.insert(0, str(SHARED / 'fixtures'))
  import make_checkpoint  # noqa: E402
  return make_checkpoint.build_state(name)


def official_npz(tmp_path_factory, name: str) -> pathlib.Path:
  """Fixture ``name`` written as an official-format .npz in a temporary folder."""
  import numpy as np
  state = official_state(name)
  out = tmp_path_factory.mktemp('ckpt') / f'{name}.npz'
  np.savez(out, **state)
  return out


@pytest.fixture(scope='session')
def stcn_npz(tmp_path_factory):
  """The stcn_random fixture rebuilt as .npz (no torch needed)."""
  return official_npz(tmp_path_factory, 'stcn_random')
