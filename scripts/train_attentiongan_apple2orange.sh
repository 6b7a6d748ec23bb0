#!/usr/bin/env bash
# Train AttentionGAN on apple2orange (unpaired: DATAROOT/trainA, trainB; see datasets/README.md).
# As the official command line: --pool_size 50 --norm instance --lambda_A 10 --lambda_B 10
# --lambda_identity 0.5 --load_size 286 --crop_size 256 (resize to 286x286, random 256 crop, flip).
# Official settings (the code's defaults): batch 1, 100 + 100 epochs (constant, then linear decay).
#
#   DATAROOT=./datasets/apple2orange bash scripts/train_attentiongan_apple2orange.sh [extra train.py flags]
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${DATAROOT:-./datasets/apple2orange}"
NAME="${NAME:-apple2orange_attentiongan}"

FLAGS=(
  --model attention_gan --name "$NAME" --dataset_mode unaligned --dataroot "$DATAROOT"
  --pool_size 50 --norm instance --lambda_A 10 --lambda_B 10 --lambda_identity 0.5
  --load_size 286 --crop_size 256 --batch_size 1 --niter 100 --niter_decay 100
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
