"""``--dataset_mode synthetic_unpaired``: the embedded unpaired task, generated on first use (the main
job of ``--model attention_gan``).

The synthetic scenes (``data/synthetic.py``) rendered in two palettes: domain A as the synthetic
dataset draws them (channel levels 30 / 225, textures +-15), domain B darker and flatter, every channel
v -> 70 + 0.45 v (levels 83.5 / 171, textures +-7). The two palettes share no colour, so translating A
to B and keeping B as it is (CycleGAN's identity loss) do not contradict each other; each class keeps
its hue and its texture, so which B colour a class must get is identifiable from unpaired data (with an
inverted palette it is not: any colour permutation preserving the set of colours fools the
discriminators equally, and a CycleGAN learns the hue-preserving one). A and B are drawn from different
scenes, never paired. Layout under ``--dataroot`` (default ``./datasets/synthetic_unpaired``):
``trainA/ trainB/ testA/ testB/`` (PNG) and ``testA_label/ testB_label/`` (the class ids of the test
scenes, for the score), ``synthetic_unpaired.json`` last.

Score (:class:`TranslationScorer`, needs no weight file): every pixel of a translated test image is
given the nearest of the 16 class colours of both palettes; the score is the fraction of pixels whose
nearest colour is the target palette's colour of the source scene's class (A->B and B->A: a pixel left
in the source palette counts as wrong), plus the mean of the background mask A_10 of G_A (how much of
the output the generator copied from its input).
"""

import json
import logging
import os
import shutil
import tempfile

import numpy as np
import torch
from PIL import Image

from data import synthetic
from data.unaligned_dataset import UnalignedDataset
from util.errors import require_positive

logger = logging.getLogger(__name__)

META_FILE = "synthetic_unpaired.json"
GENERATOR_VERSION = 3
# Split -> index of the scene stream (the paired synthetic dataset uses 0 and 1).
_STREAMS = {"trainA": 2, "trainB": 3, "testA": 4, "testB": 5}


B_OFFSET, B_SCALE = 70.0, 0.45


def to_domain_b(image):
    """Domain B's rendering of a domain-A image: uint8 [H,W,3] -> uint8."""
    return np.clip(np.rint(B_OFFSET + B_SCALE * image.astype(np.float32)), 0, 255).astype(np.uint8)


def ensure_dataset(root, seed, num_train, num_test, size):
    wanted = {"version": GENERATOR_VERSION, "seed": int(seed), "num_train": int(num_train),
              "num_test": int(num_test), "size": int(size)}
    meta = os.path.join(root, META_FILE)
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            found = json.load(f)
        if found == wanted:
            return root
        raise ValueError(f"{root} holds an unpaired synthetic dataset generated with {found}, but {wanted} was "
                         "requested; delete the folder to regenerate it, or choose another --dataroot")
    if os.path.isdir(root) and os.listdir(root):
        raise ValueError(f"{root} exists and is not empty but has no {META_FILE}: choose an empty or missing "
                         "--dataroot for --dataset_mode synthetic_unpaired")
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".synthetic-unpaired-tmp-", dir=parent)
    try:
        for split, stream in _STREAMS.items():
            count = num_train if split.startswith("train") else num_test
            os.makedirs(os.path.join(tmp, split))
            if split.startswith("test"):
                os.makedirs(os.path.join(tmp, split + "_label"))
            for i in range(count):
                label, _, image = synthetic.generate_scene(np.random.default_rng([seed, stream, i]), size)
                if split.endswith("B"):
                    image = to_domain_b(image)
                name = f"{split}_{i:05d}.png"
                Image.fromarray(image).save(os.path.join(tmp, split, name))
                if split.startswith("test"):
                    Image.fromarray(label).save(os.path.join(tmp, split + "_label", name))
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(wanted, f, indent=2, sort_keys=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not os.path.isfile(meta):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("generated the unpaired synthetic dataset (%d + %d train, %d + %d test, %dx%d) in %s",
                num_train, num_train, num_test, num_test, size, size, root)
    return root


class SyntheticUnpairedDataset(UnalignedDataset):
    """Unpaired synthetic scenes; samples as in UnalignedDataset, plus at test time 'A_label' and
    'B_label' (int64 [1,H,W], the class ids of the scenes) for the score."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser = UnalignedDataset.modify_commandline_options(parser, is_train)
        synthetic.add_generation_flags(parser, size=32, what="scenes per domain")
        parser.set_defaults(dataroot="./datasets/synthetic_unpaired", preprocess_mode="resize_and_crop",
                            load_size=32, crop_size=32, display_winsize=64)
        return parser

    @staticmethod
    def validate_options(opt):
        UnalignedDataset.validate_options(opt)
        require_positive(opt, "synthetic_num_train", "synthetic_num_val", "synthetic_size")

    @classmethod
    def input_folders(cls, opt):
        return []  # generated under --dataroot on first use

    @staticmethod
    def exact_scorer(opt):
        return TranslationScorer(opt)

    def __init__(self, opt):
        ensure_dataset(opt.dataroot, opt.synthetic_seed, opt.synthetic_num_train, opt.synthetic_num_val,
                       opt.synthetic_size)
        super().__init__(opt)

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        if not self.train:
            for key in ("A", "B"):
                path = sample[f"{key}_paths"]
                folder, name = os.path.split(path)
                label = np.array(Image.open(os.path.join(folder + "_label", name)), dtype=np.int64)
                sample[f"{key}_label"] = torch.from_numpy(label)[None]
        return sample


class TranslationScorer:
    """``add(outputs, batch, fake_name)`` per batch of ``model.inference(..., extras=True)``; ``scores()``
    -> {'A_to_B_accuracy', 'B_to_A_accuracy', 'background_mask'} (floats in [0, 1]).

    A->B accuracy: the fraction of pixels of fake_B whose nearest colour among both palettes (8 + 8
    class colours; textures change a channel by at most 15, the colours differ by >= 53) is palette B's
    colour of the source scene's class; B->A likewise with palette A. Copying the input scores 0.
    background_mask: the mean of G_A's background mask A_10 ('attention_B', mask 10).
    """

    kind, what, needs_extras = "translation", "translated", True
    main_metric = "A_to_B_accuracy"

    def __init__(self, opt):
        colours_a = synthetic.CLASS_COLOURS
        colours_b = to_domain_b(colours_a.astype(np.uint8)[None])[0].astype(np.float32)
        self.colours = torch.from_numpy(np.concatenate([colours_a, colours_b]) / 127.5 - 1.0)  # [16,3]
        self.hits = {"A_to_B": 0, "B_to_A": 0}
        self.pixels = {"A_to_B": 0, "B_to_A": 0}
        self.mask_sum, self.mask_pixels = 0.0, 0

    def add(self, outputs, batch, fake_name=None, kept=None):
        kept = kept if kept is not None else outputs["fake_B"].size(0)
        pairs = (("A_to_B", outputs["fake_B"], batch["A_label"], True),
                 ("B_to_A", outputs["fake_A"], batch["B_label"], False))
        n = synthetic.NUM_CLASSES
        for key, fake, label, to_b in pairs:
            fake = fake[:kept].detach().float().cpu()
            dist = ((fake[:, None] - self.colours[None, :, :, None, None]) ** 2).sum(dim=2)  # [B,16,H,W]
            pred = dist.argmin(dim=1)
            target = label[:kept, 0] + (n if to_b else 0)
            self.hits[key] += int((pred == target).sum())
            self.pixels[key] += target.numel()
        if "attention_B" in outputs:
            background = outputs["attention_B"][:kept, -1].float()
            self.mask_sum += float(background.sum())
            self.mask_pixels += background.numel()

    def scores(self):
        out = {f"{k}_accuracy": self.hits[k] / max(self.pixels[k], 1) for k in self.hits}
        if self.mask_pixels:
            out["background_mask"] = self.mask_sum / self.mask_pixels
        return out
