#!/usr/bin/env bash
# Test OASIS on Cityscapes (35 label ids, 0 = unlabeled, 512x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png (PNGs quantised as the official
# test writes them).
# Loads checkpoints/$NAME/models/${EPOCH}_EMA.pth (the EMA generator; --no_EMA: ${EPOCH}_G.pth): an
# official OASIS run folder as it is, or one of ours. EPOCH defaults to best, as the official test.
#
#   CITYSCAPES_DATAROOT=/data/cityscapes bash scripts/test_oasis_cityscapes.sh [extra test.py flags, e.g. --n_samples 4 --evaluate]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CITYSCAPES_DATAROOT:-./datasets/cityscapes}"
NAME="${NAME:-oasis_cityscapes}"
EPOCH="${EPOCH:-best}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --model oasis --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode cityscapes --dataroot "$DATAROOT"
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
