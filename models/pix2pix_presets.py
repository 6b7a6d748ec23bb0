"""Hyper-parameters of the pix2pix model (SPADE / DAGAN) per dataset mode.

Looked up by ``models.get_presets('pix2pix', dataset_mode, is_train)`` and applied by the options as
defaults above the dataset's own (flags on the command line, and with ``--load_from_opt_file`` the
saved options, still win); ``--help`` marks them ``preset pix2pix/<dataset_mode>``. The dataset
modules hold only data facts (label_nc, sizes, preprocessing). Keys in :data:`ARCHITECTURE_KEYS`
also apply at test time, so test.py rebuilds the network that was trained.

Origins:
- The public datasets: DAGAN's official training scripts (``train_<dataset>.sh`` of DAGAN_v1 for
  Cityscapes and ADE20K, of GauGAN_DAGAN for the others): ``--niter``,
  ``--niter_decay`` and the global ``--batchSize`` (on 1 / 8 / 4 / 4 / 4 GPUs). They pass no
  ``--lr`` / ``--ngf`` / ``--ndf``, so SPADE's defaults apply (options/train_options.py ``--lr
  0.0002``, base_options.py ``--ngf 64``, train_options.py ``--ndf 64``), as does SPADE's
  ``--num_upsampling_layers normal``, except Cityscapes: SPADE's data/cityscapes_dataset.py sets
  ``more``. ``print_freq`` is SPADE's default (100).
  (The official scripts also pass ``--save_epoch_freq 5 --save_latest_freq 1000``: checkpointing
  choices of their machines, not hyper-parameters; not preset.)
- synthetic: this repository's main job (``python train.py`` with no arguments), which must finish
  within ~10 minutes on 2 CPU cores. Tuned by measurement (1 torch thread, no VGG loss, seed 0):
  DAGAN at 32x32 with ngf 16 costs ~0.43 CPU-s per iteration at batch 4; 600 iterations (4 + 2
  epochs of 100) reach 94% pixel accuracy on val, while lr 2e-4 reached only 90% after 700
  iterations, hence lr 4e-4 (G 2e-4, D 8e-4 under TTUR). print_freq 10 gives 60 points on the loss
  curves. No VGG loss, so that the main job is the same on every machine whether or not the VGG19
  weights are in the torch hub cache (``--vgg_loss`` turns it on).
"""

# The options that shape the networks test.py rebuilds (the others are training hyper-parameters).
# The geometry keys and the run folder (name) matter only where a preset sets them: the condconv main job's
# 64x64 and its own run folder, which test.py --netG condconv then finds.
ARCHITECTURE_KEYS = ("netG", "ngf", "num_upsampling_layers", "norm_G", "use_vae", "z_dim",
                     "no_sam", "no_cam", "cam_mode", "cam_scales", "condconv_hidden", "preprocess_mode", "load_size",
                     "crop_size", "aspect_ratio", "name")

# Official public-dataset settings shared by all (SPADE defaults, see above).
_SPADE_DEFAULTS = dict(lr=0.0002, ngf=64, ndf=64, num_upsampling_layers="normal", print_freq=100)

PRESETS = {
    # DAGAN_v1/train_cityscapes.sh: --niter 100 --niter_decay 100 --batchSize 8 (1 GPU);
    # num_upsampling_layers 'more': SPADE data/cityscapes_dataset.py.
    "cityscapes": {**_SPADE_DEFAULTS, "batchSize": 8, "niter": 100, "niter_decay": 100,
                   "num_upsampling_layers": "more"},
    # DAGAN_v1/train_ade.sh: --niter 100 --niter_decay 100 --batchSize 8 (1 GPU).
    "ade20k": {**_SPADE_DEFAULTS, "batchSize": 8, "niter": 100, "niter_decay": 100},
    # GauGAN_DAGAN/train_coco.sh: --niter 50 --niter_decay 50 --batchSize 32 (8 GPUs).
    "coco": {**_SPADE_DEFAULTS, "batchSize": 32, "niter": 50, "niter_decay": 50},
    # GauGAN_DAGAN/train_facades.sh: --niter 50 --niter_decay 50 --batchSize 4 (4 GPUs).
    "facades": {**_SPADE_DEFAULTS, "batchSize": 4, "niter": 50, "niter_decay": 50},
    # GauGAN_DAGAN/train_celeba.sh: --niter 50 --niter_decay 50 --batchSize 16 (4 GPUs).
    "celebamask_hq": {**_SPADE_DEFAULTS, "batchSize": 16, "niter": 50, "niter_decay": 50},
    # GauGAN_DAGAN/train_deepfashion.sh: --niter 50 --niter_decay 50 --batchSize 32 (4 GPUs).
    "deepfashion": {**_SPADE_DEFAULTS, "batchSize": 32, "niter": 50, "niter_decay": 50},
    # This repository's main job, measured (see above).
    "synthetic": dict(ngf=16, ndf=16, batchSize=4, lr=0.0004, niter=4, niter_decay=2, print_freq=10,
                      num_upsampling_layers="normal", no_vgg_loss=True),
}

# Presets per generator, layered above PRESETS (models.get_presets(..., variant=<netG>)).
VARIANT_OPTION = "netG"

# CC-FPSE (--netG condconv), from its official train.sh: --batchSize 1 on each of the 8 processes of one
# --mpdist server (ngpus_per_node 8: global batch 8), --niter 100 --niter_decay 100, --lambda_feat 20;
# lr and ngf/ndf are SPADE's defaults (as in PRESETS). The official scripts also pass --use_vae and
# --netD fpse, which the scripts/train_ccfpse_*.sh pass here too (a preset of --use_vae could not be
# switched off; --dry_run counts without it). Cityscapes keeps 'more' from PRESETS (the official
# generator switches to it for dataset_mode cityscapes).
_CCFPSE = dict(batchSize=8, niter=100, niter_decay=100, lambda_feat=20.0)

VARIANT_PRESETS = {
    "condconv": {
        "ade20k": _CCFPSE,
        "cityscapes": _CCFPSE,
        "coco": _CCFPSE,
        # The main job for CC-FPSE (python train.py --netG condconv --netD fpse): the synthetic scenes at
        # 64x64 (the FPSE D halves the image five times and instance-normalises the result), measured to
        # finish within ~10 minutes on 2 CPU cores (see the README).
        "synthetic": dict(name="synthetic_ccfpse", preprocess_mode="fixed", load_size=64, crop_size=64,
                          aspect_ratio=1.0, ngf=16, ndf=16,
                          condconv_hidden=16, batchSize=4, lr=0.0004, niter=4, niter_decay=2, print_freq=10,
                          no_vgg_loss=True),
    },
}
