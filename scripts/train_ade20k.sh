#!/usr/bin/env bash
# Train DAGAN on ADE20K (150 classes + unlabeled channel, 256x256).
# Official settings (SPEC section 6): global batch 8 on 1 GPU(s), 100 epochs at constant
# learning rate + 100 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
# These settings are not repeated here: the data facts (label_nc, sizes, ...) are the defaults of
# data/ade20k_dataset.py and the hyper-parameters (batch, epochs, lr, ngf, ...) the presets in
# models/pix2pix_presets.py; `python train.py --dataset_mode ade20k --help` shows them, marked.
#
# Data layout under $DATAROOT: ADEChallengeData2016 layout: images/ and annotations/ with _train_ / _val_ in the file names.
#
# Single node (default):
#   ADE20K_DATAROOT=/data/ade20k NGPU=1 bash scripts/train_ade20k.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py <flags below>
# Multi-node (M nodes, NGPU GPUs each; run the same command on every node with its own NODE_RANK):
#   NNODES=M NODE_RANK=R RDZV_ENDPOINT=HOST:PORT bash scripts/train_ade20k.sh
#   -> torchrun --nnodes M --node_rank R --nproc_per_node=$NGPU --rdzv_backend c10d \
#        --rdzv_endpoint HOST:PORT train.py <flags below>
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${ADE20K_DATAROOT:-./datasets/ADEChallengeData2016}"
NAME="${NAME:-ade20k_dagan}"
NGPU="${NGPU:-1}"

FLAGS=(
  --name "$NAME"
  --dataset_mode ade20k --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
