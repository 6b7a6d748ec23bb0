#!/usr/bin/env bash
# Train DAGAN on DeepFashion (20 classes, 256x256).
# Official settings (SPEC section 6): global batch 32 on 4 GPU(s), 50 epochs at constant
# learning rate + 50 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
# These settings are not repeated here: the data facts (label_nc, sizes, ...) are the defaults of
# data/deepfashion_dataset.py and the hyper-parameters (batch, epochs, lr, ngf, ...) the presets in
# models/pix2pix_presets.py; `python train.py --dataset_mode deepfashion --help` shows them, marked.
#
# Data layout under $DATAROOT: {train,test}_label/ and {train,test}_img/ (or pass --label_dir/--image_dir).
#
# Single node (default):
#   DEEPFASHION_DATAROOT=/data/deepfashion NGPU=4 bash scripts/train_deepfashion.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py <flags below>
# Multi-node (M nodes, NGPU GPUs each; run the same command on every node with its own NODE_RANK):
#   NNODES=M NODE_RANK=R RDZV_ENDPOINT=HOST:PORT bash scripts/train_deepfashion.sh
#   -> torchrun --nnodes M --node_rank R --nproc_per_node=$NGPU --rdzv_backend c10d \
#        --rdzv_endpoint HOST:PORT train.py <flags below>
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${DEEPFASHION_DATAROOT:-./datasets/deepfashion}"
NAME="${NAME:-deepfashion_dagan}"
NGPU="${NGPU:-4}"

FLAGS=(
  --name "$NAME"
  --dataset_mode deepfashion --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
