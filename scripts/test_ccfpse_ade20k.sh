#!/usr/bin/env bash
# Test CC-FPSE (--netG condconv) on ADE20K (150 classes + unlabeled as raw values, 151 channels, no instance maps, 256x256): writes results/$NAME/test_$EPOCH/index.html with
# images/input_label/<stem>.png and images/synthesized_image/<stem>.png (PNGs quantised as the official
# test writes them: uint8((x + 1) / 2 * 255), truncated).
# Loads checkpoints/$NAME/${EPOCH}_net_G.pth and _net_E.pth: ours or the released files as they are.
# As the official test scripts, with the VAE: z is sampled from the encoding of each real photo (SPADE's
# test; seeded by --seed here); add --sample_z for z ~ N(0, I). For a generator trained without the VAE,
# pass USE_VAE=0 (the official ADE20K script names a generator that does not exist; this one works).
#
#   ADE20K_DATAROOT=/data/ade20k EPOCH=200 bash scripts/test_ccfpse_ade20k.sh [extra test.py flags, e.g. --evaluate]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh

DATAROOT="${ADE20K_DATAROOT:-./datasets/ADEChallengeData2016}"
NAME="${NAME:-ccfpse_ade20k}"
EPOCH="${EPOCH:-latest}"
PYTHON="${PYTHON:-python}"

FLAGS=(
  --name "$NAME" --which_epoch "$EPOCH" --netG condconv
  --dataset_mode ade20k --dataroot "$DATAROOT"
)
if [ "${USE_VAE:-1}" != 0 ]; then
  FLAGS+=(--use_vae)
fi

exec "$PYTHON" test.py "${FLAGS[@]}" "$@"
