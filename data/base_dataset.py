"""Dataset base class and the resize/crop/flip transforms of every SPADE ``--preprocess_mode``.

Label and instance maps are transformed as integer images with NEAREST resampling (class and instance
ids must never be interpolated); photos with BICUBIC. One parameter dict (crop position, flip) from
:func:`get_params` is applied to the label, the instance map and the photo of a sample, so they stay
aligned.

Differences from the SPADE reference, on purpose:
- ``scale_shortside``: the short side becomes ``load_size`` (the reference keeps the original short
  side and only rescales the long one).
- Crops are random only when training; at test time the crop is centred, so results do not depend on
  RNG state.
- A crop larger than the (resized) image raises instead of silently padding labels with class 0.
"""

import logging

import numpy as np
import torch
import torch.utils.data as data
from PIL import Image

logger = logging.getLogger(__name__)

PREPROCESS_MODES = (
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "scale_shortside",
    "scale_shortside_and_crop",
    "fixed",
    "none",
)

# 'none' only rounds each side to a multiple of this, as the reference does, so every U-Net-like
# stride divides the size.
NONE_MODE_BASE = 32


class BaseDataset(data.Dataset):
    """Base of every dataset mode. Subclasses return one sample dict per index (see Pix2pixDataset)."""

    epoch = 0

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """Flags of every dataset mode; a mode's own setter calls this first."""
        parser.add_argument("--skip_data_check", action="store_true",
                            help="do not check every file of the split before training / testing "
                                 "(data.check_dataset; for huge sets: bad files then stop the run "
                                 "when the loader reaches them, and no aspect-ratio warning is given)")
        return parser

    @staticmethod
    def validate_options(opt):
        """Check this dataset's option values after parsing (and set derived ones); raise
        ``util.errors.OptionError``."""

    @staticmethod
    def input_folders(opt):
        """[(flag, folder)] of the folders this dataset reads, which must exist before anything is
        built (checked by train.py / test.py right after the options; the files inside are checked
        when the dataset is built). Default: ``--dataroot``."""
        return [("--dataroot", opt.dataroot)]

    # A dataset whose appearance is known exactly (the generated ones) scores a model's outputs
    # without weight files: ``exact_scorer(opt)`` returns the scorer (util/layout_score.py describes
    # the interface); None = no such score.
    exact_scorer = None

    def set_epoch(self, epoch):
        """Called by the sampler each epoch; seeds the per-sample random crop and flip."""
        self.epoch = int(epoch)

    # -- the data check before a run (data.check_dataset, data/data_check.py) -------------------
    def data_files(self):
        """``[(path, kind)]`` of every file the dataset reads, ``kind`` one of
        ``data.data_check.KINDS`` ('image', 'label', 'instance'); [] = nothing to check up front."""
        return []

    def data_problems(self, facts):
        """The problems the samples would raise, found from ``facts`` ({path: {kind: facts}}, see
        ``data.data_check.inspect_file``) of :meth:`data_files`: ``[(path, message)]``, each message
        the text the loader would raise for that file."""
        return []


def check_preprocess_mode(mode):
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown --preprocess_mode {mode!r}; known modes: {', '.join(PREPROCESS_MODES)}")


def resized_size(opt, size):
    """(width, height) after the resize step of ``opt.preprocess_mode`` for an input of ``size`` = (w, h)."""
    mode = opt.preprocess_mode
    check_preprocess_mode(mode)
    w, h = size
    if mode == "resize_and_crop":
        return opt.load_size, opt.load_size
    if mode.startswith("scale_width"):
        return opt.load_size, max(1, int(opt.load_size * h / w))
    if mode.startswith("scale_shortside"):
        if w <= h:
            return opt.load_size, max(1, int(opt.load_size * h / w))
        return max(1, int(opt.load_size * w / h)), opt.load_size
    if mode == "fixed":
        return generated_size(opt)
    if mode == "none":
        return (max(NONE_MODE_BASE, int(round(w / NONE_MODE_BASE)) * NONE_MODE_BASE),
                max(NONE_MODE_BASE, int(round(h / NONE_MODE_BASE)) * NONE_MODE_BASE))
    return w, h  # 'crop': no resize


def generated_size(opt):
    """(width, height) of the images the generators make: ``crop_size`` x round(crop_size / aspect_ratio)."""
    return opt.crop_size, max(1, int(round(opt.crop_size / opt.aspect_ratio)))


def crop_problem(opt, size):
    """The error of cropping ``--crop_size`` from an input of ``size`` = (w, h) after the resize step,
    or None when the crop fits (or ``--preprocess_mode`` does not crop)."""
    new_w, new_h = resized_size(opt, size)
    if "crop" in opt.preprocess_mode and (new_w < opt.crop_size or new_h < opt.crop_size):
        if (new_w, new_h) == tuple(size):
            what = f": a {new_w}x{new_h} image is"
        else:
            what = f" resizes a {size[0]}x{size[1]} image to {new_w}x{new_h},"
        return (f"--preprocess_mode {opt.preprocess_mode}{what} smaller than --crop_size {opt.crop_size}; "
                "raise --load_size or lower --crop_size")
    return None


def get_params(opt, size, rng):
    """Random crop position and flip for one sample whose label map has ``size`` = (w, h).

    ``rng`` is a ``numpy.random.Generator``. Returns {'crop_pos': (x, y) or None, 'flip': bool}.
    """
    new_w, new_h = resized_size(opt, size)
    crop_pos = None
    if "crop" in opt.preprocess_mode:
        problem = crop_problem(opt, size)
        if problem:
            raise ValueError(problem)
        if opt.isTrain:
            crop_pos = (int(rng.integers(0, new_w - opt.crop_size + 1)),
                        int(rng.integers(0, new_h - opt.crop_size + 1)))
        else:
            crop_pos = ((new_w - opt.crop_size) // 2, (new_h - opt.crop_size) // 2)
    flip = bool(opt.isTrain and not opt.no_flip and rng.random() < 0.5)
    return {"crop_pos": crop_pos, "flip": flip}


def transform_pil(img, opt, params, method):
    """Resize, crop and flip one PIL image according to ``opt`` and ``params``."""
    target = resized_size(opt, img.size)
    if target != img.size:
        img = img.resize(target, method)
    if params["crop_pos"] is not None:
        x, y = params["crop_pos"]
        img = img.crop((x, y, x + opt.crop_size, y + opt.crop_size))
    if params["flip"]:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def transform_map(array, opt, params):
    """Integer map [H,W] (labels or instance ids) -> int64 tensor [1,H',W'], NEAREST resampling."""
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.int32))  # mode "I"
    img = transform_pil(img, opt, params, Image.NEAREST)
    return torch.from_numpy(np.array(img, dtype=np.int64))[None]


def transform_image(img, opt, params):
    """RGB PIL image -> float32 tensor [3,H',W'] in [-1,1], BICUBIC resampling."""
    img = transform_pil(img, opt, params, Image.BICUBIC)
    # ToTensor + Normalize(0.5, 0.5), the official codes' computation, in float32: (x / 255 - 0.5) / 0.5
    array = (np.asarray(img, dtype=np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
