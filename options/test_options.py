"""Options of test.py (SPADE flag names): which weights, how many images, where, which metrics."""

import os
import re

from util.errors import OptionError, require_positive
from util.metrics.fid import INCEPTION_WEIGHTS_FILE
from util.metrics.perceptual import LPIPS_BACKBONE_FILES, RESNET50_FILE

from .base_options import BaseOptions

FID_DIMS = (64, 192, 768, 2048)


class TestOptions(BaseOptions):
    """test.py reads the run's saved options (``<checkpoints_dir>/<name>/opt.json``, written by
    train.py) by default when the file exists: the networks are rebuilt as trained and the data read as
    in training (geometry, label classes, dataset mode and folders, model, netG, ...); flags given on
    the command line override them; ``--no_opt_file`` ignores the file."""

    isTrain = False
    prog = "test.py"
    # The test phase's own settings are not taken from a training run's opt.json (nor the inference
    # precision: a run trained with --amp fp16 on a GPU may be tested on a CPU).
    not_from_file = BaseOptions.not_from_file + ("phase", "serial_batches", "no_flip", "batchSize", "load_size",
                                                 "which_epoch", "amp")

    @staticmethod
    def add_loading_options(parser):
        """The flags that pick a trained run's weights (test.py and demo.py), and inference's defaults."""
        parser.add_argument("--which_epoch", type=str, default="latest",
                            help="which epoch to load: a number or 'latest'")
        parser.add_argument("--no_opt_file", action="store_true",
                            help="do not read <checkpoints_dir>/<name>/opt.json, the options train.py saved "
                                 "(read by default when it exists; flags given override its values)")
        parser.add_argument("--use_ema", action="store_true",
                            help="load <which_epoch>_net_G_ema.pth (the EMA generator of --ema_decay) "
                                 "instead of _net_G.pth")
        # No random crop, flip or shuffling at test time; batch 1 as in the papers.
        # Inference only: the channels-last layout is faster and gives the same images.
        parser.set_defaults(phase="test", preprocess_mode="scale_width_and_crop", serial_batches=True,
                            no_flip=True, batchSize=1, memory_format="channels_last")
        return parser

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser = self.add_loading_options(parser)
        parser.add_argument("--results_dir", type=str, default="./results", help="results are saved here")
        parser.add_argument("--how_many", type=int, default=float("inf"),
                            help="how many test images to run (default: all)")
        parser.add_argument("--n_samples", type=int, default=1,
                            help="images per label map with different noise (multimodal synthesis, e.g. --model "
                                 "oasis): images/synthesized_image/<stem>_<k>.png, seeded by --seed")
        parser.add_argument("--resample_class", type=int, default=None,
                            help="with --n_samples: sample 0 as usual, the others re-draw the noise only inside "
                                 "the pixels of this label value (as in the label files; --model oasis)")
        parser.add_argument("--evaluate", action="store_true",
                            help="compute the metrics (FID, ..., segmentation scores) after generation")
        parser.add_argument("--save_attention", action="store_true",
                            help="save the SAM attention map and the CAM channel weights of every image")
        # evaluation (test.py --evaluate); weight files default to the torch hub cache
        parser.add_argument("--eval_metrics", type=str, default=None,
                            help="comma list of fid,kid,lpips,frd ('' = none) (default: the dataset's protocol)")
        parser.add_argument("--inception_weights", type=str, default=None,
                            help=f"{INCEPTION_WEIGHTS_FILE} (default: the torch hub cache)")
        parser.add_argument("--lpips_weights", type=str, default=None,
                            help=f"AlexNet backbone of LPIPS, {LPIPS_BACKBONE_FILES['alex']} (default: the torch hub cache)")
        parser.add_argument("--frd_weights", type=str, default=None,
                            help=f"ResNet-50 of FRD, {RESNET50_FILE} (default: the torch hub cache)")
        parser.add_argument("--fid_dims", type=int, default=None, choices=FID_DIMS,
                            help="Inception feature dimension of FID (default: 2048, test.py's FID_DIMS)")
        parser.add_argument("--seg_model", type=str, default=None,
                            choices=["drn", "upernet", "deeplab", "synthetic"],
                            help="segmenter for mIoU/accuracy (default: the dataset's protocol)")
        parser.add_argument("--segmenter_weights", type=str, default=None,
                            help="weights of the segmenter (default: the torch hub cache)")
        parser.add_argument("--seg_size", type=str, default=None,
                            help="WxH at which generated images are segmented (default: the generated size)")
        return parser

    def reads_option_file(self, opt):
        if opt.load_from_opt_file and opt.no_opt_file:
            raise OptionError("--no_opt_file", None, "contradicts --load_from_opt_file")
        if opt.load_from_opt_file:
            return True  # the file must exist (read_option_file says so when it does not)
        return not opt.no_opt_file and os.path.isfile(self.option_file_path(opt, "json"))

    def apply_phase_rules(self, opt, given):
        opt.which_epoch_given = bool({"which_epoch", "ckpt_iter", "epoch"} & set(given))
        if "load_size" not in given:
            # No random crop at test time: the network sees the whole (resized) image.
            opt.load_size = opt.crop_size

    @staticmethod
    def validate_options(opt):
        BaseOptions.validate_options(opt)
        require_positive(opt, "how_many", "n_samples")
        if opt.resample_class is not None and opt.n_samples < 2:
            raise OptionError("--resample_class", opt.resample_class, "needs --n_samples 2 or more (sample 0 is "
                                                                      "the image the others re-sample a class of)")
        if opt.n_samples > 1 and (opt.evaluate or opt.save_attention):
            raise OptionError("--n_samples", opt.n_samples, "writes several images per label map; --evaluate and "
                                                           "--save_attention take one: run them separately")
        if opt.seg_size is not None and not re.fullmatch(r"[1-9]\d*[xX][1-9]\d*", opt.seg_size):
            raise OptionError("--seg_size", opt.seg_size, "must be WxH in pixels, e.g. 512x256")
