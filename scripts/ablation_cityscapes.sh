#!/usr/bin/env bash
# The paper's ablation on Cityscapes (Table 4), one training run per variant, all with the official
# Cityscapes settings of scripts/train_cityscapes.sh (global batch 8, 100 + 100 epochs, 512x256):
#
#   B1  SPADE (GauGAN) baseline            --netG spade
#   B2  + SAM                              --netG dagan --no_cam
#   B3  + CAM-I  (Eq. 8)                   --netG dagan --no_sam --cam_mode I
#   B4  + CAM-II (Eq. 9)                   --netG dagan --no_sam --cam_mode II
#   B5  SAM + CAM-I                        --netG dagan --cam_mode I
#   B6  SAM + CAM-II (DAGAN, the default)  --netG dagan --cam_mode II
#
# Usage:
#   CITYSCAPES_DATAROOT=/data/cityscapes bash scripts/ablation_cityscapes.sh B3 [extra train.py flags]
#   bash scripts/ablation_cityscapes.sh all        # B1..B6 one after the other
# Each variant trains under the name cityscapes_ablation_<B>; test it with
#   NAME=cityscapes_ablation_B3 bash scripts/test_cityscapes.sh <same variant flags>
# NGPU / NNODES / NODE_RANK / RDZV_ENDPOINT work as in scripts/train_cityscapes.sh (single node by
# default: torchrun --standalone --nproc_per_node=$NGPU; multi-node: torchrun --nnodes M --node_rank R
# --rdzv_backend c10d --rdzv_endpoint HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

variant_flags() {
  case "$1" in
    B1) echo "--netG spade" ;;
    B2) echo "--netG dagan --no_cam" ;;
    B3) echo "--netG dagan --no_sam --cam_mode I" ;;
    B4) echo "--netG dagan --no_sam --cam_mode II" ;;
    B5) echo "--netG dagan --cam_mode I" ;;
    B6) echo "--netG dagan --cam_mode II" ;;
    *) echo "unknown ablation variant '$1' (choose B1..B6 or all)" >&2; return 1 ;;
  esac
}

if [ "$#" -lt 1 ]; then
  echo "usage: $0 B1|B2|B3|B4|B5|B6|all [extra train.py flags]" >&2
  exit 2
fi
WHICH="$1"
shift

if [ "$WHICH" = "all" ]; then
  VARIANTS=(B1 B2 B3 B4 B5 B6)
else
  VARIANTS=("$WHICH")
fi

for B in "${VARIANTS[@]}"; do
  FLAGS=$(variant_flags "$B")
  # shellcheck disable=SC2086  # the variant flags are meant to split into words
  NAME="cityscapes_ablation_${B}" bash scripts/train_cityscapes.sh $FLAGS "$@"
done
