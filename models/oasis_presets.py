"""Hyper-parameters of the OASIS model per dataset mode (``models.get_presets('oasis', ...)``).

Origins: the official OASIS code (boschresearch/OASIS): ``config.py`` (``set_dataset_default_lm``:
Cityscapes lr_g 4e-4, lambda_labelmix 5, EMA 0.999, freq_fid 2500; COCO-Stuff 100 epochs), the
data loaders (``dataloaders/*.py``: ADE20K and COCO-Stuff resized to 256x256, Cityscapes to
512x256, no crop: the official loaders set a crop size but never crop, and their training load size of
286 is overwritten by the val loader's 256 on the shared options object, so training images are
resized straight to the fixed size, as here; flip in training; no instance maps) and the training
scripts (``scripts/train_*.sh``: batch 32 for ADE20K and COCO-Stuff, 20 for Cityscapes).

synthetic: this repository's main job for OASIS (``python train.py --model oasis``), which must
finish within ~10 minutes on 2 CPU cores (see the comment at its entry).
"""

# The options that shape the networks (and the data geometry they were built for) test.py rebuilds.
ARCHITECTURE_KEYS = ("channels_G", "num_res_blocks", "z_dim", "no_3dnoise", "param_free_norm", "spade_ks", "spade_hidden",
                     "no_spectral_norm", "no_instance", "preprocess_mode", "load_size", "crop_size", "aspect_ratio")

# Resize straight to the fixed size, no crop, no instance maps (the official loaders).
_FIXED_256 = dict(preprocess_mode="fixed", load_size=256, crop_size=256, aspect_ratio=1.0, no_instance=True)

PRESETS = {
    # scripts/train_ade20k.sh: --batch_size 32; config.py: 200 epochs, lambda_labelmix 10, EMA 0.9999.
    "ade20k": {**_FIXED_256, "batchSize": 32, "niter": 200},
    # scripts/train_cityscapes.sh: --batch_size 20; config.py: lr_g 4e-4, lambda_labelmix 5, EMA 0.999,
    # freq_fid 2500; dataloaders/CityscapesDataset.py: 512x256.
    "cityscapes": dict(preprocess_mode="fixed", load_size=512, crop_size=512, aspect_ratio=2.0, no_instance=True,
                       batchSize=20, niter=200, lr_g=0.0004, lambda_labelmix=5.0, ema_decay=0.999, eval_freq=2500),
    # scripts/train_coco.sh: --batch_size 32; config.py: 100 epochs.
    "coco": {**_FIXED_256, "batchSize": 32, "niter": 100},
    "facades": dict(no_instance=True),
    "celebamask_hq": dict(no_instance=True),
    "deepfashion": dict(no_instance=True),
    "custom": dict(no_instance=True),
    # The main job for OASIS: the synthetic scenes at 64x64 (the D halves the image six times), a narrow
    # G and D, the fast layers; FID is not computed (the layout score is, at the end).
    "synthetic": dict(preprocess_mode="fixed", load_size=64, crop_size=64, aspect_ratio=1.0, no_instance=True,
                      channels_G=8, channels_D=16, spade_hidden=32, z_dim=16, batchSize=4, niter=6,
                      print_freq=10, display_freq=100,
                      eval_freq=0, save_latest_freq=5000, save_iter_freq=0, bn_recalib_batches=20,
                      lr_g=0.0004, lr_d=0.0004, ema_decay=0.99, fast_ops=True),
}
