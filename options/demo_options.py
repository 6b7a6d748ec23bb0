"""Options of demo.py: a trained run (read from its opt.json, as test.py does) and the web server."""

from util.errors import OptionError

from .base_options import BaseOptions
from .test_options import TestOptions

DEFAULT_PORT = 7860


class DemoOptions(TestOptions):
    """The run's saved options (``<checkpoints_dir>/<name>/opt.json``) as test.py reads them, the
    weights to load (``--which_epoch``, ``--use_ema``) and where the page is served."""

    prog = "demo.py"
    description = ("The painting demo: a local web page that paints label maps for a trained run and shows "
                   "its images. The demo's own flags: --port, --host, --train_main_job; the run: --name, "
                   "--checkpoints_dir, --which_epoch, --use_ema (its other options come from its opt.json)")

    def initialize(self, parser):
        parser = BaseOptions.initialize(self, parser)
        parser = self.add_loading_options(parser)
        parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                            help="port of the page (0: any free port)")
        parser.add_argument("--host", type=str, default="127.0.0.1",
                            help="address the server listens on; the default is this machine only. Another "
                                 "address (e.g. 0.0.0.0) exposes the demo, which has no authentication, to "
                                 "the network: a warning is printed")
        parser.add_argument("--train_main_job", action="store_true",
                            help="when the main job's run (python train.py) has no weights yet, train it "
                                 "first without asking")
        return parser

    @staticmethod
    def validate_options(opt):
        BaseOptions.validate_options(opt)
        if not 0 <= opt.port <= 65535:
            raise OptionError("--port", opt.port, "must be in 0..65535")
        if not opt.host.strip():
            raise OptionError("--host", opt.host, "must be an address, e.g. 127.0.0.1")
