#!/usr/bin/env bash
# Test DAGAN on DeepFashion (20 classes, 256x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png.
# Loads checkpoints/$NAME/${EPOCH}_net_G.pth: one of ours or an official weight-only file (put the
# official file there under that name). The network is rebuilt from the dataset's defaults
# (data/deepfashion_dataset.py) and the model's presets (models/pix2pix_presets.py), as in training; pass
# the flags of a non-default variant (e.g. --netG spade) after the script name. The load size is left
# to test.py, which sets it to the crop size (no random crop at test time).
#
#   DEEPFASHION_DATAROOT=/data/deepfashion bash scripts/test_deepfashion.sh [extra test.py flags, e.g. --evaluate --save_attention]
#
# Testing runs as one process on one device (no torchrun needed); the validation split is used where
# the dataset ships no test labels.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${DEEPFASHION_DATAROOT:-./datasets/deepfashion}"
NAME="${NAME:-deepfashion_dagan}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode deepfashion --dataroot "$DATAROOT"
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
