#!/usr/bin/env bash
# Train DAGAN on CelebAMask-HQ (19 face-part classes, 512x512).
# Official settings (SPEC section 6): global batch 16 on 4 GPU(s), 50 epochs at constant
# learning rate + 50 epochs of linear decay. --batchSize is the global batch: torchrun splits it
# evenly across all processes (it must divide by NNODES*NGPU).
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

DATAROOT="${CELEBAMASK_HQ_DATAROOT:-./datasets/celebamask_hq}"
NAME="${NAME:-celebamask_hq_dagan}"
NGPU="${NGPU:-4}"

FLAGS=(
  --name "$NAME"
  --dataset_mode celebamask_hq --dataroot "$DATAROOT"
  --label_nc 19
  --no_instance
  --preprocess_mode resize_and_crop
  --load_size 542
  --crop_size 512
  --aspect_ratio 1.0
  --num_upsampling_layers normal
  --batchSize 16
  --niter 50 --niter_decay 50
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
