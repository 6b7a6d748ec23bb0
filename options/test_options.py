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
        parser.add_argument("--use_ema", action="store_true",
                            help="load <which_epoch>_net_G_ema.pth (the EMA generator of --ema_decay) "
                                 "instead of _net_G.pth")
        parser.add_argument("--evaluate", action="store_true",
                            help="compute the metrics (FID, ..., segmentation scores) after generation")
        parser.add_argument("--save_attention", action="store_true",
                            help="save the SAM attention map and the CAM channel weights of every image")
        # evaluation (test.py --evaluate); weight files default to the torch hub cache
        parser.add_argument("--eval_metrics", type=str, default=None,
                            help="comma list of fid,kid,lpips,frd ('' = none); default depends on the dataset")
        parser.add_argument("--inception_weights", type=str, default=None,
                            help="pt_inception-2015-12-05-6726825d.pth (default: torch hub cache)")
        parser.add_argument("--lpips_weights", type=str, default=None,
                            help="AlexNet backbone of LPIPS, alexnet-owt-7be5be79.pth (default: torch hub cache)")
        parser.add_argument("--frd_weights", type=str, default=None,
                            help="ResNet-50 of FRD, resnet50-0676ba61.pth (default: torch hub cache)")
        parser.add_argument("--fid_dims", type=int, default=None, choices=[64, 192, 768, 2048],
                            help="Inception feature dimension of FID (default 2048)")
        parser.add_argument("--seg_model", type=str, default=None,
                            choices=["drn", "upernet", "deeplab", "synthetic"],
                            help="segmenter for mIoU/accuracy; default depends on the dataset")
        parser.add_argument("--segmenter_weights", type=str, default=None,
                            help="weights of the segmenter (default: torch hub cache)")
        parser.add_argument("--seg_size", type=str, default=None,
                            help="WxH at which generated images are segmented (default: generated size)")
        # No random crop, flip or shuffling at test time; batch 1 as in the papers.
        # Inference only: the channels-last layout is faster and gives the same images.
        parser.set_defaults(phase="test", preprocess_mode="scale_width_and_crop", serial_batches=True,
                            no_flip=True, batchSize=1, memory_format="channels_last")
        return parser
