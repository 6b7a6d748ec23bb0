#!/usr/bin/env bash
# Train DAGAN on CelebAMask-HQ (19 face-part classes, 512x512).
# Official settings (SPEC section 6): global batch 16 on 4 GPU(s), 50 epochs at constant
# learning rate + 50 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
# These settings are not repeated here: the data facts (label_nc, sizes, ...) are the defaults of
# data/celebamask_hq_dataset.py and the hyper-parameters (batch, epochs, lr, ngf, ...) the presets in
# models/pix2pix_presets.py; `python train.py --dataset_mode celebamask_hq --help` shows them, marked.
#
# Data layout under $DATAROOT: {train,val,test}_label/ and _img/ as written by datasets/prepare_celebamask_hq.py (or pass --label_dir/--image_dir).
#
# Single node (default):
#   CELEBAMASK_HQ_DATAROOT=/data/celebamask_hq NGPU=4 bash scripts/train_celebamask_hq.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py <flags below>
# Multi-node (M nodes, NGPU GPUs each; run the same command on every node with its own NODE_RANK):
#   NNODES=M NODE_RANK=R RDZV_ENDPOINT=HOST:PORT bash scripts/train_celebamask_hq.sh
#   -> torchrun --nnodes M --node_rank R --nproc_per_node=$NGPU --rdzv_backend c10d \
#        --rdzv_endpoint HOST:PORT train.py <flags below>
# Resume an interrupted run by appending --continue_train.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CELEBAMASK_HQ_DATAROOT:-./datasets/celebamask_hq}"
NAME="${NAME:-celebamask_hq_dagan}"
NGPU="${NGPU:-4}"

FLAGS=(
  --name "$NAME"
  --dataset_mode celebamask_hq --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
