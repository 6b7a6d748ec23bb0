#!/usr/bin/env bash
# Test OASIS on COCO-Stuff (182 classes; value v -> channel v+1, 255 -> channel 0; 256x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png (PNGs quantised as the official
# test writes them).
# Loads checkpoints/$NAME/models/${EPOCH}_EMA.pth (the EMA generator; --no_EMA: ${EPOCH}_G.pth): an
# official OASIS run folder as it is, or one of ours. EPOCH defaults to best, as the official test.
#
#   COCO_DATAROOT=/data/coco bash scripts/test_oasis_coco.sh [extra test.py flags, e.g. --n_samples 4 --evaluate]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${COCO_DATAROOT:-./datasets/coco_stuff}"
NAME="${NAME:-oasis_coco}"
EPOCH="${EPOCH:-best}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --model oasis --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode coco --dataroot "$DATAROOT"
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
