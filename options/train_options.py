"""Options of train.py (SPADE flag names)."""

from .base_options import BaseOptions


class TrainOptions(BaseOptions):
    isTrain = True

    def initialize(self, parser):
        parser = super().initialize(parser)
        # display and saving
        parser.add_argument("--display_freq", type=int, default=100,
                            help="iterations between visual results on the training page")
        parser.add_argument("--print_freq", type=int, default=100, help="iterations between loss log lines")
        parser.add_argument("--save_latest_freq", type=int, default=5000,
                            help="iterations between full-state 'latest' checkpoints")
        parser.add_argument("--save_epoch_freq", type=int, default=10,
                            help="epochs between <epoch>_net_*.pth weight files")
        parser.add_argument("--no_html", action="store_true", help="do not write the training HTML page")
        parser.add_argument("--overwrite", action="store_true",
                            help="start a new run even if checkpoints/<name> already holds one (it is replaced)")

        # resuming / fine-tuning
        parser.add_argument("--continue_train", action="store_true",
                            help="resume from our full-state checkpoint, or fine-tune from official weight files")
        parser.add_argument("--which_epoch", type=str, default="latest",
                            help="which epoch to load: a number or 'latest'")

        # schedule and optimiser
        parser.add_argument("--niter", type=int, default=50, help="epochs at the initial learning rate")
        parser.add_argument("--niter_decay", type=int, default=0,
                            help="epochs of linear decay of the learning rate to zero")
        parser.add_argument("--optimizer", type=str, default="adam", choices=["adam"], help="optimiser")
        parser.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (only with --no_TTUR)")
        parser.add_argument("--beta2", type=float, default=0.999, help="Adam beta2 (only with --no_TTUR)")
        parser.add_argument("--no_TTUR", action="store_true",
                            help="same lr for G and D and betas (beta1, beta2); TTUR otherwise: "
                                 "G lr/2, D lr*2, betas (0, 0.9)")
        parser.add_argument("--lr", type=float, default=0.0002, help="initial learning rate for Adam")
        parser.add_argument("--D_steps_per_G", type=int, default=1,
                            help="discriminator steps per generator step")

        # discriminator and losses
        parser.add_argument("--ndf", type=int, default=64, help="number of discriminator filters in the first conv layer")
        parser.add_argument("--lambda_feat", type=float, default=10.0, help="weight of the feature matching loss")
        parser.add_argument("--lambda_vgg", type=float, default=10.0, help="weight of the VGG perceptual loss")
        parser.add_argument("--lambda_kld", type=float, default=0.05, help="weight of the KL divergence (--use_vae)")
        parser.add_argument("--no_ganFeat_loss", action="store_true", help="no discriminator feature matching loss")
        parser.add_argument("--no_vgg_loss", action="store_true", help="no VGG perceptual loss")
        parser.add_argument("--vgg_weights", type=str, default=None,
                            help="VGG19 ImageNet weights file; default <torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth")
        parser.add_argument("--gan_mode", type=str, default="hinge", choices=["hinge", "ls", "original", "w"],
                            help="GAN loss")
        parser.add_argument("--netD", type=str, default="multiscale", help="discriminator architecture")

        # evaluation during training and the EMA generator (util/train_eval.py, util/ema.py)
        parser.add_argument("--eval_freq", type=int, default=0,
                            help="iterations between FID / layout-score evaluations on the val split "
                                 "(keeps best_net_G.pth); 0 = off")
        parser.add_argument("--eval_batches", type=int, default=0,
                            help="val batches used by --eval_freq; 0 = the whole val split")
        parser.add_argument("--inception_weights", type=str, default=None,
                            help="pt_inception-2015-12-05-6726825d.pth for FID (default: torch hub cache)")
        parser.add_argument("--fid_dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                            help="Inception feature dimension of FID during training (default 2048)")
        parser.add_argument("--ema_decay", type=float, default=0.0,
                            help="keep an exponential moving average of G with this decay (e.g. 0.999), "
                                 "used for evaluation and saved as *_net_G_ema.pth; 0 = off")
        parser.add_argument("--bn_recalib_batches", type=int, default=20,
                            help="training batches over which the EMA G's BatchNorm statistics are "
                                 "re-estimated before it is used")
        return parser
