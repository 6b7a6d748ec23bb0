#!/usr/bin/env bash
# Test DAGAN on CelebAMask-HQ (19 face-part classes, 512x512): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png.
# Loads checkpoints/$NAME/${EPOCH}_net_G.pth: one of ours or an official weight-only file (put the
# official file there under that name). The network is rebuilt from the dataset's defaults
# (data/celebamask_hq_dataset.py) and the model's presets (models/pix2pix_presets.py), as in training; pass
# the flags of a non-default variant (e.g. --netG spade) after the script name. The load size is left
# to test.py, which sets it to the crop size (no random crop at test time).
#
#   CELEBAMASK_HQ_DATAROOT=/data/celebamask_hq bash scripts/test_celebamask_hq.sh [extra test.py flags, e.g. --evaluate --save_attention]
#
# Testing runs as one process on one device (no torchrun needed); the validation split is used where
# the dataset ships no test labels.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CELEBAMASK_HQ_DATAROOT:-./datasets/celebamask_hq}"
NAME="${NAME:-celebamask_hq_dagan}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --name "$NAME" --which_epoch "$EPOCH"
  --dataset_mode celebamask_hq --dataroot "$DATAROOT"
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
