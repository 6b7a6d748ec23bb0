#!/usr/bin/env bash
# Train OASIS on COCO-Stuff (182 classes; value v -> channel v+1, 255 -> channel 0; 256x256).
# Official settings (the OASIS repository's scripts/train_coco.sh and config.py): global batch 32, 100 epochs, lr_g 1e-4 / lr_d 4e-4, LabelMix 10, EMA 0.9999, FID every 5000 iterations;
# no instance maps, images resized to the fixed size without crop, flipped at random.
# They are the presets of models/oasis_presets.py (`python train.py --model oasis --dataset_mode coco --help`
# shows them, marked); --batch_size is the global batch, split evenly across the processes.
# FID during training needs the pytorch-fid Inception weights in the torch hub cache (or
# --inception_weights); without them FID is skipped with a warning (or pass --freq_fid 0).
#
#   COCO_DATAROOT=/data/coco NGPU=4 bash scripts/train_oasis_coco.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py --model oasis <flags below>
# Multi-node: NNODES, NODE_RANK, RDZV_ENDPOINT as in scripts/train_coco.sh.
# Resume with --continue_train (our full state, or an official run folder's models/latest_*.pth).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${COCO_DATAROOT:-./datasets/coco_stuff}"
NAME="${NAME:-oasis_coco}"

FLAGS=(
  --model oasis --name "$NAME"
  --dataset_mode coco --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
