#!/usr/bin/env bash
# The test command: set up .venv (Python >= 3.12) and run the test suite.
# Tests that need ../shared (official-output fixtures) skip with a reason if it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
# Arguments go to pytest (default: the whole suite), e.g. tests/test_api.py -x or -m "not slow".
# The files are shared out to MEMVOS_TEST_WORKERS pytest-xdist workers (default 2; 0: one process).
if [ "$#" -eq 0 ]; then set -- tests; fi
# One persistent XLA compilation cache for the workers and the processes they start:
# tests compile many of the same programs (the tiny model's per-parameter initialisers,
# train.py at one device count, the parity runs). Kept for the next run (git-ignored).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$PWD/.cache/jax}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}"
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="${JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES:-0}"
"$PY" scripts/env_report.py
exec "$PY" -m pytest -q -rs -n "${MEMVOS_TEST_WORKERS:-2}" --dist loadfile --durations=20 "$@"
