#!/usr/bin/env bash
# Test AttentionGAN on maps: writes results/$NAME/test_$EPOCH/images/{real_A,fake_B,rec_A,real_B,fake_A,rec_B}/
# and, with --save_attention, the 10 masks and 9 content images of each translation; index.html shows them.
# Loads checkpoints/$NAME/${EPOCH}_net_G_A.pth and _G_B.pth (ours or the released files under these
# names; --single_generator: G_A only). As the official test: images resized straight to 256x256.
#
#   DATAROOT=./datasets/maps bash scripts/test_attentiongan_maps.sh [extra test.py flags, e.g. --save_attention]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${DATAROOT:-./datasets/maps}"
NAME="${NAME:-maps_attentiongan}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --model attention_gan --name "$NAME" --epoch "$EPOCH"
  --dataset_mode unaligned --dataroot "$DATAROOT" --load_size 256 --crop_size 256
)

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
