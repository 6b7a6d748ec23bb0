"""Hyper-parameters of the AttentionGAN model per dataset mode (``models.get_presets('attention_gan', ...)``).

unaligned: the official defaults need no preset (CycleGAN's options: batch 1, load 286, crop 256,
100 + 100 epochs; the official horse2zebra script trains 60 + 0 epochs at batch 4: see
scripts/train_attentiongan_horse2zebra.sh). synthetic_unpaired: the main job of this model
(``python train.py --model attention_gan``), which must finish within ~10 minutes on 2 CPU cores: the
official networks (counts as released) on 32x32 scenes; measured figures in the README.
"""

# The options that shape the networks test.py rebuilds.
ARCHITECTURE_KEYS = ("ngf",)

PRESETS = {
    "synthetic_unpaired": dict(batchSize=4, niter=2, niter_decay=1, print_freq=10, display_freq=50,
                               save_epoch_freq=1, save_latest_freq=1000),
}
