"""Output folders that are complete or absent (memvos_jax.data.outputs)."""

import os

import pytest

from memvos_jax.data import outputs
from memvos_jax.errors import InputError


def _tree(folder):
  return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f)).read()
          for d, _, files in os.walk(folder) for f in files}


def test_staged_folder_appears_only_when_complete(tmp_path):
  target = tmp_path / 'clip'
  with outputs.staged(target) as tmp:
    (tmp / 'a.png').write_text('a')
    assert not target.exists() and tmp.parent == tmp_path and tmp.name.startswith('.clip.')
  assert _tree(target) == {'a.png': 'a'}
  assert os.listdir(tmp_path) == ['clip']


def test_failure_leaves_the_previous_result_and_no_partial(tmp_path):
  target = tmp_path / 'clip'
  target.mkdir()
  (target / 'a.png').write_text('old')
  with pytest.raises(RuntimeError):
    with outputs.staged(target) as tmp:
      (tmp / 'a.png').write_text('new, half written')
      raise RuntimeError('frame 3 is broken')
  assert _tree(target) == {'a.png': 'old'}
  assert os.listdir(tmp_path) == ['clip']


def test_success_replaces_the_folder_and_removes_a_stale_marker(tmp_path):
  target = tmp_path / 'clip'
  target.mkdir()
  (target / 'stale.png').write_text('old')
  outputs.mark_failed(target, 'an earlier\nfailure', 'details')
  assert (tmp_path / 'clip.FAILED').read_text() == 'an earlier failure\ndetails'
  (tmp_path / '.clip.partial-dead').mkdir()                 # a killed run's staging folder
  with outputs.staged(target) as tmp:
    (tmp / 'new.png').write_text('new')
  assert _tree(target) == {'new.png': 'new'}
  assert sorted(os.listdir(tmp_path)) == ['clip']


def test_merge_keeps_other_files_of_a_user_folder(tmp_path):
  out = tmp_path / 'out'
  (out / 'masks').mkdir(parents=True)
  (out / 'masks' / '00009.png').write_text('old run')
  (out / 'notes.txt').write_text('mine')
  with outputs.staged(out, merge=True) as tmp:
    (tmp / 'masks').mkdir()
    (tmp / 'masks' / '00000.png').write_text('new')
    (tmp / 'overlay.gif').write_text('gif')
  assert _tree(out) == {'notes.txt': 'mine', 'overlay.gif': 'gif',
                        os.path.join('masks', '00000.png'): 'new'}


def test_check_writable(tmp_path):
  assert outputs.check_writable(tmp_path / 'a' / 'b').is_dir()
  (tmp_path / 'f').write_text('x')
  with pytest.raises(InputError, match='output folder is a file'):
    outputs.check_writable(tmp_path / 'f')
  with pytest.raises(InputError, match='cannot create the output folder'):
    outputs.check_writable(tmp_path / 'f' / 'sub')
  with pytest.raises(InputError, match='output path exists and is not a folder'):
    with outputs.staged(tmp_path / 'f'):
      pass
