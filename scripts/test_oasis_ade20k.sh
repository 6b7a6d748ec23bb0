#!/usr/bin/env bash
# Test OASIS on ADE20K (150 classes + unknown channel 0, 256x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png (PNGs quantised as the official
# test writes them).
# Loads checkpoints/$NAME/models/${EPOCH}_EMA.pth (the EMA generator; --no_EMA: ${EPOCH}_G.pth): an
# official OASIS run folder as it is, or one of ours. EPOCH defaults to best, as the official test.
#
#   ADE20K_DATAROOT=/data/ade20k bash scripts/test_oasis_ade20k.sh [extra test.py flags, e.g. --n_samples 4 --evaluate]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${ADE20K_DATAROOT:-./datasets/ADEChallengeData2016}"
NAME="${NAME:-oasis_ade20k}"
EPOCH="${EPOCH:-best}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --model oasis --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode ade20k --dataroot "$DATAROOT"
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
