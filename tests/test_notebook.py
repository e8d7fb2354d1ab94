"""notebooks/quickstart.ipynb runs headless on CPU (so it never rots)."""

import pathlib

import nbformat
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_quickstart_notebook_runs(tmp_path):
  nb = nbformat.read(REPO / 'notebooks' / 'quickstart.ipynb', as_version=4)
  NotebookClient(nb, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': str(REPO / 'notebooks')}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  assert any('image/png' in o.get('data', {}) for o in outputs)     # the overlay is shown
  text = ''.join(o.get('text', '') for o in outputs)
  assert '(4, 240, 427, 3) -> (4, 240, 427)' in text
