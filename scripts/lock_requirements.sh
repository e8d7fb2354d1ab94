#!/usr/bin/env bash
# Regenerate requirements-lock.txt: the exact versions that requirements-dev.txt
# resolves to today, installed into a throw-away venv (CI and setup_env.sh pin them).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3.12 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
{
  head -3 requirements-lock.txt
  "$tmp/venv/bin/python" -m pip freeze | sort -f
} > "$tmp/lock" && mv "$tmp/lock" requirements-lock.txt
echo "requirements-lock.txt: $(grep -vc '^#' requirements-lock.txt) pinned packages"
