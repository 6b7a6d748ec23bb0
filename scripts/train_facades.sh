#!/usr/bin/env bash
# Train DAGAN on CMP Facades (13 classes, 1024x1024).
# Official settings (SPEC section 6): global batch 4 on 4 GPU(s), 50 epochs at constant
# learning rate + 50 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
# These settings are not repeated here: the data facts (label_nc, sizes, ...) are the defaults of
# data/facades_dataset.py and the hyper-parameters (batch, epochs, lr, ngf, ...) the presets in
# models/pix2pix_presets.py; `python train.py --dataset_mode facades --help` shows them, marked.
#
# Data layout under $DATAROOT: {train,val}_img/, {train,val}_label/.
#
# Single node (default):
#   FACADES_DATAROOT=/data/facades NGPU=4 bash scripts/train_facades.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py <flags below>
# Multi-node (M nodes, NGPU GPUs each; run the same command on every node with its own NODE_RANK):
#   NNODES=M NODE_RANK=R RDZV_ENDPOINT=HOST:PORT bash scripts/train_facades.sh
#   -> torchrun --nnodes M --node_rank R --nproc_per_node=$NGPU --rdzv_backend c10d \
#        --rdzv_endpoint HOST:PORT train.py <flags below>
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${FACADES_DATAROOT:-./datasets/facades}"
NAME="${NAME:-facades_dagan}"
NGPU="${NGPU:-4}"

FLAGS=(
  --name "$NAME"
  --dataset_mode facades --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
