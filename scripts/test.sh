#!/usr/bin/env bash
# The test command: set up .venv (Python >= 3.12) and run the test suite.
# Tests that need ../shared (official-output fixtures) skip with a reason if it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
# Arguments go to pytest (default: the whole suite), e.g. tests/test_api.py -x or -m "not slow".
# The files are shared out to MEMVOS_TEST_WORKERS pytest-xdist workers (default 2; 0: one process).
if [ "$#" -eq 0 ]; then set -- tests; fi
exec "$PY" -m pytest -q -rs -n "${MEMVOS_TEST_WORKERS:-2}" --dist loadfile "$@"
