#!/usr/bin/env bash
# Train DAGAN on Cityscapes (35 label ids + instance edges, 512x256, 'more' upsampling).
# Official settings (SPEC section 6): global batch 8 on 1 GPU(s), 100 epochs at constant
# learning rate + 100 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
# These settings are not repeated here: the data facts (label_nc, sizes, ...) are the defaults of
# data/cityscapes_dataset.py and the hyper-parameters (batch, epochs, lr, ngf, ...) the presets in
# models/pix2pix_presets.py; `python train.py --dataset_mode cityscapes --help` shows them, marked.
#
# Data layout under $DATAROOT: gtFine/{train,val}/<city>/*_gtFine_{labelIds,instanceIds}.png and leftImg8bit/{train,val}/<city>/*_leftImg8bit.png.
#
# Single node (default):
#   CITYSCAPES_DATAROOT=/data/cityscapes NGPU=1 bash scripts/train_cityscapes.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py <flags below>
# Multi-node (M nodes, NGPU GPUs each; run the same command on every node with its own NODE_RANK):
#   NNODES=M NODE_RANK=R RDZV_ENDPOINT=HOST:PORT bash scripts/train_cityscapes.sh
#   -> torchrun --nnodes M --node_rank R --nproc_per_node=$NGPU --rdzv_backend c10d \
#        --rdzv_endpoint HOST:PORT train.py <flags below>
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CITYSCAPES_DATAROOT:-./datasets/cityscapes}"
NAME="${NAME:-cityscapes_dagan}"
NGPU="${NGPU:-1}"

FLAGS=(
  --name "$NAME"
  --dataset_mode cityscapes --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
