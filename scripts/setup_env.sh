#!/usr/bin/env bash
# Create .venv with Python >= 3.12 (newest jax needs it), install requirements-dev.txt at the
# exact versions of requirements-lock.txt (pip -c: a new jax release cannot change CI's
# numbers overnight) and the repo (editable).
# Usage: source scripts/setup_env.sh   (idempotent; sets $PY to the venv's python)
set -e
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$_here/.venv/bin/python" ]; then
  _py=""
  for c in python3.13 python3.12 /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      _py="$c"; break
    fi
  done
  [ -n "$_py" ] || { echo "error: Python >= 3.12 not found (install python3.12)" >&2; exit 1; }
  "$_py" -m venv "$_here/.venv"
fi
# pip runs only when the requirements or pyproject.toml changed since the last install (a stamp).
# The repo itself is installed editable (no deps: requirements*.txt has them), so
# memvos_jax imports from this checkout anywhere, tests and subprocesses included.
_stamp="$_here/.venv/.requirements-stamp"
_want="$(cat "$_here/requirements.txt" "$_here/requirements-dev.txt" "$_here/requirements-lock.txt" "$_here/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  "$_here/.venv/bin/python" -m pip install -q --disable-pip-version-check --no-compile \
      -r "$_here/requirements-dev.txt" -c "$_here/requirements-lock.txt"
  "$_here/.venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$_here"
  # Bytecode on all cores (pip compiles file by file: 49 s -> 41 s on 2 cores; bytecode
  # is an optimisation, a file that does not compile is skipped as pip skips it).
  "$_here/.venv/bin/python" -m compileall -q -j 0 "$("$_here/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
  echo "$_want" > "$_stamp"
fi
# memvos_jax's own bytecode (quick when up to date). Python reads .pyc files even where
# PYTHONDONTWRITEBYTECODE is set (CI machines, containers), which otherwise makes every
# process, each test's child included, compile the package's sources again (~0.6 s each).
# (A file that does not compile is left to the import that reports it: hence || true.)
"$_here/.venv/bin/python" -m compileall -q -j 0 "$_here/memvos_jax" >/dev/null || true
PY="$_here/.venv/bin/python"
export PY
