"""Output folders that are complete or absent: staged, renamed, failure markers.

A result folder (one clip of ``eval.py``, the ``--out`` of the segment CLI) is
written into a hidden temporary sibling (``.<name>.partial-<id>``) and renamed
into place only when everything in it is written, so a run that fails or is
killed never leaves a folder that looks complete. A failure is recorded
beside it as ``<name>.FAILED`` (the reason on its first line); a later success
removes the marker. Nothing outside the staged folder is touched until the
rename, so other clips' outputs stay as they were.

``check_writable`` is called before any model is loaded, so an output path
that is a file or a read-only folder is reported at once.
"""

import contextlib
import glob
import os
import pathlib
import shutil
import uuid

from memvos_jax.errors import InputError

PARTIAL = '.partial-'
FAILED_SUFFIX = '.FAILED'


def _reason(e: OSError) -> str:
  return e.strerror or type(e).__name__


def check_writable(folder) -> pathlib.Path:
  """Create ``folder`` if needed and prove it writable; InputError naming it if not."""
  folder = pathlib.Path(folder)
  if folder.exists() and not folder.is_dir():
    raise InputError(folder, 'output folder is a file (choose another path or remove it)')
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise InputError(folder, f'cannot create the output folder: {_reason(e)}') from None
  probe = folder / f'.write-probe-{uuid.uuid4().hex}'
  try:   # os.access() says yes to root on a read-only folder; a real write does not
    probe.touch()
  except OSError as e:
    raise InputError(folder, f'output folder is not writable: {_reason(e)}') from None
  finally:
    with contextlib.suppress(OSError):
      probe.unlink()
  return folder


def failed_marker(folder) -> pathlib.Path:
  """``<parent>/<name>.FAILED`` for the result folder ``<parent>/<name>``."""
  folder = pathlib.Path(os.path.abspath(folder))
  return folder.parent / (folder.name + FAILED_SUFFIX)


def mark_failed(folder, reason: str, details: str = '') -> pathlib.Path | None:
  """Write ``<folder>.FAILED``: the one-line reason, then optional details."""
  marker = failed_marker(folder)
  text = ' '.join(reason.split()) + '\n' + (details if details else '')
  try:
    marker.write_text(text)
  except OSError:
    return None
  return marker


def _remove_stale_partials(folder: pathlib.Path) -> None:
  """Staging folders of ``folder`` left by a killed run (ours by name only)."""
  pattern = str(folder.parent / f'.{glob.escape(folder.name)}{PARTIAL}*')
  for stale in glob.glob(pattern):
    shutil.rmtree(stale, ignore_errors=True)


def _swap_in(staged: pathlib.Path, target: pathlib.Path) -> None:
  """Rename ``staged`` to ``target``; an existing ``target`` is replaced."""
  if not target.exists():
    os.rename(staged, target)
    return
  old = target.parent / f'.{target.name}.replaced-{uuid.uuid4().hex}'
  os.rename(target, old)
  try:
    os.rename(staged, target)
  except OSError:
    os.rename(old, target)   # put the previous result back
    raise
  if old.is_dir():
    shutil.rmtree(old, ignore_errors=True)
  else:
    old.unlink()


def _commit(staged: pathlib.Path, target: pathlib.Path, merge: bool) -> None:
  if merge and target.is_dir():
    for entry in sorted(staged.iterdir()):
      _swap_in(entry, target / entry.name)
    staged.rmdir()
  else:
    _swap_in(staged, target)


@contextlib.contextmanager
def staged(folder, merge: bool = False):
  """Yields a temporary folder that becomes ``folder`` when the block completes.

  With ``merge`` an existing ``folder`` is kept and each staged entry replaces
  the entry of the same name in it (for a user-chosen ``--out`` that may hold
  other files); otherwise the whole folder is replaced. If the block raises,
  the staged folder is removed and ``folder`` is left as it was. A success
  removes a stale ``<folder>.FAILED``.
  """
  target = pathlib.Path(os.path.abspath(folder))
  if target.exists() and not target.is_dir():
    raise InputError(target, 'output path exists and is not a folder')
  _remove_stale_partials(target)
  tmp = target.parent / f'.{target.name}{PARTIAL}{uuid.uuid4().hex}'
  try:
    tmp.mkdir(parents=True)
  except OSError as e:
    raise InputError(tmp.parent, f'cannot write the output folder: {_reason(e)}') from None
  try:
    yield tmp
    try:
      _commit(tmp, target, merge)
    except OSError as e:
      raise InputError(target, f'cannot move the finished output into place: {_reason(e)}') from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  with contextlib.suppress(OSError):
    failed_marker(target).unlink()
