"""Injects known semantic errors one at a time and shows which parity tests catch them.

A parity test with a tolerance must still fail on a real error. For each
mutation below this copies the working tree to a temporary folder (with
``shared`` linked beside it, as ``../shared`` is beside the repo), applies
the one-line change, runs the parity tests that should catch it, and prints
whether they failed (caught) or passed (missed). Exit status 1 if any
mutation was missed.

    python scripts/inject_errors.py [--only NAME ...] [--list]

Needs ../shared (fixtures and the bike clip). Each mutation takes 1-3 minutes
on two cores.
"""

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def parity(model):
  """The parity table's mask and probability tests of ``model`` (tests/test_parity.py)."""
  return [f'tests/test_parity.py::test_{what}_match_official[{model}]'
          for what in ('masks', 'probabilities')]


# name: (file, old text, new text, tests, what the error means)
MUTATIONS = {
    'afb_merge_ge': (
        'memvos_jax/memory/adaptive.py', 'merge = best > thres_close',
        'merge = best >= thres_close',
        [*parity('afb_urr'), 'tests/test_afb_urr_parity.py', 'tests/test_adaptive_bank.py'],
        'AFB-URR merges at cosine >= 0.95 instead of > 0.95'),
    'afb_merge_threshold': (
        'memvos_jax/memory/adaptive.py', 'merge = best > thres_close',
        'merge = best > thres_close - 2e-3',
        [*parity('afb_urr'), 'tests/test_afb_urr_parity.py'],
        'AFB-URR merge threshold 0.948 instead of 0.95'),
    'afb_update_rate': (
        'memvos_jax/memory/adaptive.py', 'keys, hit = _merge(keys, count, new_k, target, merge, update_rate)',
        'keys, hit = _merge(keys, count, new_k, target, merge, update_rate * 0.5)',
        [*parity('afb_urr'), 'tests/test_afb_urr_parity.py'],
        'AFB-URR merged keys move half as far towards the new keys'),
    'stcn_top_k_19': (
        'memvos_jax/memory/readout.py', 'vals, pick = jax.lax.top_k(vals, min(top_k, m))',
        'vals, pick = jax.lax.top_k(vals, min(top_k - 1, m))',
        parity('stcn'),
        'STCN reads the top 19 memory entries instead of 20'),
}


def run(name, tests_extra):
  path, old, new, tests, what = MUTATIONS[name]
  with tempfile.TemporaryDirectory(prefix=f'mutant_{name}_') as tmp:
    repo = pathlib.Path(tmp) / 'repo'
    shutil.copytree(REPO, repo, symlinks=True, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'runs', '__pycache__', '.pytest_cache', 'notebooks'))
    (pathlib.Path(tmp) / 'shared').symlink_to(REPO.parent / 'shared')
    target = repo / path
    text = target.read_text()
    if text.count(old) != 1:
      sys.exit(f'inject_errors: {path}: expected the text once, found {text.count(old)}: {old}')
    target.write_text(text.replace(old, new))
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           *tests, *tests_extra], cwd=repo, capture_output=True, text=True)
    summary = [l for l in proc.stdout.splitlines() if l.startswith(('FAILED', 'ERROR'))]
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    caught = proc.returncode == 1
    print(f'{name}: {what}\n  {path}: {old!r} -> {new!r}\n  '
          f'{"CAUGHT" if caught else "MISSED"} ({time.perf_counter() - tic:.0f} s): {last}')
    for line in summary:
      print('    ' + line[:200])
    return caught


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--only', action='append', choices=sorted(MUTATIONS))
  parser.add_argument('--list', action='store_true')
  args, extra = parser.parse_known_args()
  if args.list:
    for name, m in MUTATIONS.items():
      print(f'{name}: {m[4]}')
    return
  if not (REPO.parent / 'shared' / 'fixtures').is_dir():
    sys.exit(f'inject_errors: needs {REPO.parent / "shared"} (fixtures and clips)')
  missed = [n for n in (args.only or MUTATIONS) if not run(n, extra)]
  if missed:
    print('missed: ' + ', '.join(missed))
    sys.exit(1)


if __name__ == '__main__':
  main()
