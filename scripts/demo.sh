#!/usr/bin/env bash
# The main job on the bundled example: set up .venv, rebuild the random-init
# official-format STCN checkpoint (../shared/fixtures, no torch needed) and
# segment the real clip `bike` with eval.py into out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
SHARED="${SHARED:-../shared}"
mkdir -p out
"$PY" "$SHARED/fixtures/make_checkpoint.py" stcn_random out/stcn_random.npz --npz
"$PY" eval.py --config configs/stcn.py --config.checkpoint=out/stcn_random.npz \
  --config.data.root="$SHARED/data/real_clips" --config.data.clips=bike --workdir=out/demo
