#!/usr/bin/env bash
# Train CC-FPSE (--netG condconv --netD fpse) on ADE20K (150 classes + unlabeled as raw values, 151 channels, no instance maps, 256x256).
# Official settings (xh-liu/CC-FPSE train.sh, the only official training script, written for COCO-Stuff and
# used here for every dataset): VAE on (--use_vae, KLD 0.05), --lambda_feat 20, global batch 8 (batch 1 on
# each of the 8 processes of its --mpdist launch), 100 epochs at constant learning rate + 100 of linear decay,
# TTUR as SPADE (G 1e-4, D 4e-4, Adam betas (0, 0.9)), VGG loss 10.
# --use_vae and --netD fpse are given here; the rest are the condconv presets of models/pix2pix_presets.py
# (`python train.py --netG condconv --dataset_mode ade20k --help` shows them, marked); --batchSize is the
# global batch, split evenly across the processes (the official --mpdist --dist_url --num_servers flags are
# accepted and do nothing: this launch is torchrun + DDP). Needs vgg19-dcbb9e9d.pth in the torch hub cache.
#
#   ADE20K_DATAROOT=/data/ade20k NGPU=8 bash scripts/train_ccfpse_ade20k.sh [extra train.py flags]
#   -> torchrun --standalone --nproc_per_node=$NGPU train.py --netG condconv --netD fpse --use_vae <flags below>
# Multi-node: NNODES, NODE_RANK, RDZV_ENDPOINT as in scripts/train_ade20k.sh.
# Resume with --continue_train (our full state, or official weight-only latest_net_{G,D,E}.pth files).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${ADE20K_DATAROOT:-./datasets/ADEChallengeData2016}"
NAME="${NAME:-ccfpse_ade20k}"
NGPU="${NGPU:-8}"

FLAGS=(
  --name "$NAME" --netG condconv --netD fpse --use_vae
  --dataset_mode ade20k --dataroot "$DATAROOT"
)

# shellcheck source=launch_train.sh
source scripts/launch_train.sh
launch_train "$@"
