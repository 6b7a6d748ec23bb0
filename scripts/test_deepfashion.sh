#!/usr/bin/env bash
# Test DAGAN on DeepFashion (20 classes, 256x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png.
# Loads checkpoints/$NAME/${EPOCH}_net_G.pth: one of ours or an official weight-only file (put the
# official file there under that name). The structural flags must match the training run; the load
# size is left to test.py, which sets it to the crop size (no random crop at test time).
#
#   DEEPFASHION_DATAROOT=/data/deepfashion bash scripts/test_deepfashion.sh [extra test.py flags, e.g. --evaluate --save_attention]
#
# Testing runs as one process on one device (no torchrun needed); the validation split is used where
# the dataset ships no test labels.
set -euo pipefail
cd "$(dirname "$0")/.."

DATAROOT="${DEEPFASHION_DATAROOT:-./datasets/deepfashion}"
NAME="${NAME:-deepfashion_dagan}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode deepfashion --dataroot "$DATAROOT"
  --label_nc 20
  --no_instance
  --preprocess_mode resize_and_crop
  --crop_size 256
  --aspect_ratio 1.0
  --num_upsampling_layers normal
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
