#!/usr/bin/env bash
# Train AttentionGAN on horse2zebra (unpaired: DATAROOT/trainA, trainB; see datasets/README.md).
# As the official command line: --pool_size 50 --norm instance --lambda_A 10 --lambda_B 10
# --lambda_identity 0.5 --load_size 286 --crop_size 256 (resize to 286x286, random 256 crop, flip).
# The official scripts/train_attentiongan.sh trains horse2zebra for 60 + 0 epochs at batch 4
# (--niter 60 --niter_decay 0 --batch_size 4); the code's defaults and the README use 100 + 100 at batch 1.
# This script follows the official script; pass --niter 100 --niter_decay 100 --batch_size 1 for the defaults.
#
#   DATAROOT=./datasets/horse2zebra bash scripts/train_attentiongan_horse2zebra.sh [extra train.py flags]
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${DATAROOT:-./datasets/horse2zebra}"
NAME="${NAME:-horse2zebra_attentiongan}"

FLAGS=(
  --model attention_gan --name "$NAME" --dataset_mode unaligned --dataroot "$DATAROOT"
  --pool_size 50 --norm instance --lambda_A 10 --lambda_B 10 --lambda_identity 0.5
  --load_size 286 --crop_size 256 --batch_size 4 --niter 60 --niter_decay 0
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
