#!/usr/bin/env bash
# Train OASIS on Cityscapes (35 label ids, 0 = unlabeled, 512x256).
# Official settings (the OASIS repository's scripts/train_cityscapes.sh and config.py): global batch 20, 200 epochs, lr_g 4e-4 / lr_d 4e-4, LabelMix 5, EMA 0.999, FID every 2500 iterations;
# no instance maps, images resized to the fixed size without crop, flipped at random.
# They are the presets of models/oasis_presets.py (`python train.py --model oasis --dataset_mode cityscapes --help`
# shows them, marked); --batch_size is the global batch, split evenly across the processes.
# FID during training needs the pytorch-fid Inception weights in the torch hub cache (or
# --inception_weights); without them FID is skipped with a warning (or pass --freq_fid 0).
#
#   CITYSCAPES_DATAROOT=/data/cityscapes NGPU=4 bash scripts/train_oasis_cityscapes.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py --model oasis <flags below>
# Multi-node: NNODES, NODE_RANK, RDZV_ENDPOINT as in scripts/train_cityscapes.sh.
# Resume with --continue_train (our full state, or an official run folder's models/latest_*.pth).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CITYSCAPES_DATAROOT:-./datasets/cityscapes}"
NAME="${NAME:-oasis_cityscapes}"

FLAGS=(
  --model oasis --name "$NAME"
  --dataset_mode cityscapes --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
