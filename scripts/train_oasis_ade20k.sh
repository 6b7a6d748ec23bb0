#!/usr/bin/env bash
# Train OASIS on ADE20K (150 classes + unknown channel 0, 256x256).
# Official settings (the OASIS repository's scripts/train_ade20k.sh and config.py): global batch 32, 200 epochs, lr_g 1e-4 / lr_d 4e-4, LabelMix 10, EMA 0.9999, FID every 5000 iterations;
# no instance maps, images resized to the fixed size without crop, flipped at random.
# They are the presets of models/oasis_presets.py (`python train.py --model oasis --dataset_mode ade20k --help`
# shows them, marked); --batch_size is the global batch, split evenly across the processes.
# FID during training needs the pytorch-fid Inception weights in the torch hub cache (or
# --inception_weights); without them FID is skipped with a warning (or pass --freq_fid 0).
#
#   ADE20K_DATAROOT=/data/ade20k NGPU=4 bash scripts/train_oasis_ade20k.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py --model oasis <flags below>
# Multi-node: NNODES, NODE_RANK, RDZV_ENDPOINT as in scripts/train_ade20k.sh.
# Resume with --continue_train (our full state, or an official run folder's models/latest_*.pth).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${ADE20K_DATAROOT:-./datasets/ADEChallengeData2016}"
NAME="${NAME:-oasis_ade20k}"

FLAGS=(
  --model oasis --name "$NAME"
  --dataset_mode ade20k --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
