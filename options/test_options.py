"""Options of test.py (SPADE flag names)."""

from .base_options import BaseOptions


class TestOptions(BaseOptions):
    isTrain = False

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser.add_argument("--results_dir", type=str, default="./results", help="results are saved here")
        parser.add_argument("--which_epoch", type=str, default="latest",
                            help="which epoch to load: a number or 'latest'")
        parser.add_argument("--how_many", type=int, default=float("inf"), help="how many test images to run")
        parser.add_argument("--evaluate", action="store_true",
                            help="compute the metrics (FID, ..., segmentation scores) after generation")
        parser.add_argument("--save_attention", action="store_true",
                            help="save the SAM attention map and the CAM channel weights of every image")
        # No random crop, flip or shuffling at test time; batch 1 as in the papers.
        parser.set_defaults(phase="test", preprocess_mode="scale_width_and_crop", serial_batches=True,
                            no_flip=True, batchSize=1)
        return parser
