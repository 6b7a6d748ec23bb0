#!/usr/bin/env bash
# Test CC-FPSE (--netG condconv) on Cityscapes (35 label ids + instance edges, 512x256, --num_upsampling_layers more: latent 4x8 and a 7th label-encoder level): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png (PNGs quantised as the official
# test writes them: uint8((x + 1) / 2 * 255), truncated).
# Loads checkpoints/$NAME/${EPOCH}_net_G.pth and _net_E.pth: ours or the released files as they are.
# As the official test scripts, with the VAE: z is sampled from the encoding of each real photo (SPADE's
# test; seeded by --seed here); add --sample_z for z ~ N(0, I). For a generator trained without the VAE,
# pass USE_VAE=0 (the official ADE20K script names a generator that does not exist; this one works).
#
#   CITYSCAPES_DATAROOT=/data/cityscapes EPOCH=200 bash scripts/test_ccfpse_cityscapes.sh [extra test.py flags, e.g. --evaluate]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${CITYSCAPES_DATAROOT:-./datasets/cityscapes}"
NAME="${NAME:-ccfpse_cityscapes}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --name "$NAME" --which_epoch "$EPOCH" --netG condconv
  --dataset_mode cityscapes --dataroot "$DATAROOT"
)
if [ "${USE_VAE:-1}" != 0 ]; then
  FLAGS+=(--use_vae)
fi

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
