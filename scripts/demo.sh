#!/usr/bin/env bash
# The main job on the bundled example, with the shipped default model (no
# download, no ../shared): set up .venv, then segment examples/bike_small from
# its first-frame mask into out/demo/ (masks/*.png, overlay.mp4, overlay.gif,
# contact_sheet.png, objects.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
"$PY" -m memvos_jax segment --video examples/bike_small/JPEGImages/bike \
  --mask examples/bike_small/Annotations/bike/00000.png --out out/demo
echo "Look at out/demo/contact_sheet.png and out/demo/overlay.gif"
