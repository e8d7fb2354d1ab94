"""The notebooks run headless on CPU (so they never rot)."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import CHILD_TIMEOUT_S, FAST_COMPILE

pytestmark = pytest.mark.slow   # executes the notebooks (one trains): ~1 min on 2 CPU cores

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def kernels_fast_compile(monkeypatch):
  """The kernels (started with this environment) compile at FAST_COMPILE: plumbing checks."""
  for name, value in FAST_COMPILE.items():
    monkeypatch.setenv(name, value)


def test_quickstart_notebook_runs(tmp_path):
  nb = nbformat.read(REPO / 'notebooks' / 'quickstart.ipynb', as_version=4)
  NotebookClient(nb, timeout=CHILD_TIMEOUT_S, kernel_name='python3',
                 resources={'metadata': {'path': str(REPO / 'notebooks')}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  assert any('image/png' in o.get('data', {}) for o in outputs)     # the overlay is shown
  text = ''.join(o.get('text', '') for o in outputs)
  assert '(4, 240, 427, 3) -> (4, 240, 427)' in text
  assert 'backend: cpu' in text and 'default_stcn.npz' in text      # the shipped model
  assert '1 device(s): [(1, 240, 427, 3)]' in text                  # the mesh cell
  source = ''.join(c.source for c in nb.cells)
  assert 'shared' not in source                                     # runs without ../shared


def test_training_notebook_runs_a_short_training(tmp_path, monkeypatch):
  """notebooks/train_tiny.ipynb with its ``parameters`` cell set to 5 steps."""
  nb = nbformat.read(REPO / 'notebooks' / 'train_tiny.ipynb', as_version=4)
  params = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
  assert len(params) == 1
  params[0].source = 'num_steps = 5\ncrop_size = 64'
  monkeypatch.setenv('TMPDIR', str(tmp_path))       # the notebook's workdir lives here
  NotebookClient(nb, timeout=CHILD_TIMEOUT_S, kernel_name='python3',
                 resources={'metadata': {'path': str(REPO / 'notebooks')}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'step 5: held-out J&F' in text and 'steps     1-' in text
  assert '(8, 64, 64, 3) -> (8, 64, 64)' in text
  assert any('image/png' in o.get('data', {}) for o in outputs)
  assert (tmp_path / 'memvos_tiny' / 'checkpoints' / '5').is_dir()
