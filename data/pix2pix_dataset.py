"""Base class of the paired (label map, photo[, instance map]) datasets.

A subclass implements ``get_paths(opt) -> (label_paths, image_paths, instance_paths)`` and may override
``pair_key(path)`` (how a label file and its photo are matched, default: the file stem) and
``remap_label(opt, array)`` (dataset-specific value mapping before validation) and ``class_names(opt)``.

The lists are naturally sorted (digit runs compared as numbers), cut to ``--max_dataset_size`` and
checked pairwise. Every label map is validated when it is read: 255 becomes ``label_nc`` when
``--contain_dontcare_label``, and any value outside ``[0, label_nc + contain_dontcare_label)`` raises
``ValueError`` naming the file and the values, instead of an index error deep inside a scatter.

Before a run, ``data.check_dataset`` finds the same problems in every file of the split at once
(:meth:`Pix2pixDataset.data_files` / :meth:`Pix2pixDataset.data_problems`, data/data_check.py); the
messages come from the same functions, so a file reported up front reads as it would in the loader.
"""

import logging
import os
import re

import numpy as np
import torch
from PIL import Image

from data.base_dataset import (BaseDataset, check_preprocess_mode, crop_problem, get_params, resized_size,
                               transform_image, transform_map)
from util.errors import require_positive

logger = logging.getLogger(__name__)

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")

_DIGITS = re.compile(r"(\d+)")


def label_channels(opt):
    """Number of label values (one-hot channels): the classes, plus the dontcare label if any."""
    return opt.label_nc + (1 if opt.contain_dontcare_label else 0)


def natural_key(text):
    """Sort key comparing digit runs as numbers: 'img2' < 'img10'."""
    # re.split with a capturing group alternates text / digits, so positions never mix str and int.
    return [int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(text))]


def natural_sorted(paths):
    return sorted(paths, key=natural_key)


def require_dir(folder, expected):
    """Raise FileNotFoundError naming ``folder`` and what should be in it, when it is missing."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist; expected {expected}")
    return folder


def list_files(folder, expected, extensions=IMG_EXTENSIONS, suffix="", recursive=True):
    """All files under ``folder`` whose name ends with ``suffix`` and one of ``extensions``, natural order.

    Raises FileNotFoundError naming the folder and ``expected`` when it is missing or holds no match.
    """
    require_dir(folder, expected)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(tuple(extensions)) and name.endswith(suffix):
                found.append(os.path.join(dirpath, name))
        if not recursive:
            break
    if not found:
        raise FileNotFoundError(f"folder {folder} contains no {suffix or 'image'} files; expected {expected}")
    return natural_sorted(found)


def file_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


# What PIL raises for a file it cannot decode.
DECODE_ERRORS = (OSError, SyntaxError, ValueError)


def unreadable_message(path, kind, err):
    """The message of a file PIL cannot decode: ``cannot read image <path>: <PIL's reason>``."""
    return f"cannot read {kind} {path}: {err}"


def float_map_message(path, kind):
    return f"{kind} {path} stores floating-point values; expected integer ids"


def read_rgb(path):
    """Open a photo as an RGB PIL image; OSError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except DECODE_ERRORS as err:
        raise OSError(unreadable_message(path, "image", err)) from err


def read_integer_map(path, kind):
    """Open a label or instance map as an int64 array [H,W] of its stored integer values
    (:func:`decode_integer_map`)."""
    return decode_integer_map(path, kind).astype(np.int64)


def decode_integer_map(path, kind):
    """Open a label or instance map as a 2-D integer array [H,W] in its stored integer type.

    8-bit ('L', 'P' palette indices), 16-bit ('I;16', e.g. Cityscapes instanceIds like 26001) and 32-bit
    ('I') PNGs are returned as their integer values, never rescaled. A colour file is accepted only
    when its channels are identical (a grey map saved as RGB).
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "F":
                raise ValueError(float_map_message(path, kind))
            array = np.array(img)
    except (OSError, SyntaxError) as err:
        raise OSError(unreadable_message(path, kind, err)) from err
    if array.ndim == 3:
        if array.shape[2] in (2, 4):  # LA / RGBA: drop alpha
            array = array[..., :-1]
        if not (array == array[..., :1]).all():
            raise ValueError(
                f"{kind} {path} is a colour image ({array.shape[2]} differing channels); expected a "
                "single-channel map of integer ids"
            )
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{kind} {path} has shape {array.shape}; expected a 2-D map")
    return array


def pair_size_problem(opt, image_path, image_size, label_path, label_size):
    """The error of a photo and its label map whose sizes ((w, h) each) do not fit together under
    ``--preprocess_mode``, or None. 'crop' and 'none' need equal sizes; the other modes need the
    resize step to give both the same size (else the label and the photo would not align)."""
    if image_size == label_size:
        return None
    mode = opt.preprocess_mode
    if mode in ("crop", "none"):
        return (f"image {image_path} is {image_size[0]}x{image_size[1]} but its label map {label_path} is "
                f"{label_size[0]}x{label_size[1]}; --preprocess_mode {mode} needs equal sizes")
    image_resized, label_resized = resized_size(opt, image_size), resized_size(opt, label_size)
    if image_resized != label_resized:
        return (f"image {image_path} ({image_size[0]}x{image_size[1]}) and label map {label_path} "
                f"({label_size[0]}x{label_size[1]}) give different sizes after preprocessing: "
                f"--preprocess_mode {mode} resizes them to {image_resized[0]}x{image_resized[1]} and "
                f"{label_resized[0]}x{label_resized[1]}")
    return None


def instance_size_problem(instance_path, instance_size, label_path, label_size):
    """The error of an instance map whose size differs from its label map's, or None."""
    if instance_size == label_size:
        return None
    return (f"instance map {instance_path} is {instance_size[0]}x{instance_size[1]} but its label map "
            f"{label_path} is {label_size[0]}x{label_size[1]}")


class Pix2pixDataset(BaseDataset):
    """Paired semantic-synthesis dataset.

    Sample ``i`` is a dict: 'label' int64 [1,H,W] in [0, label_nc + contain_dontcare_label);
    'instance' int64 [1,H,W] (instance ids, zeros with --no_instance); 'image' float32 [3,H,W] in
    [-1,1]; 'path' (photo path) and 'label_path' (str). H, W follow --preprocess_mode / --crop_size.
    """

    class_table = ()  # display names of the label values 0.. (data/class_names.py); see class_names
    class_colours = None  # uint8 [k, 3]: the dataset's own colours of values 0..k-1 (util.label_palette)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """The flags of every semantic dataset (label maps in, photos out); each mode calls this, then
        sets its own defaults."""
        parser = BaseDataset.modify_commandline_options(parser, is_train)
        parser.add_argument("--label_nc", type=int, default=182,
                            help="number of label classes, without the dontcare label")
        parser.add_argument("--contain_dontcare_label", action="store_true",
                            help="the label map has a dontcare value 255, mapped to channel label_nc")
        parser.add_argument("--no_instance", action="store_true",
                            help="do not add the instance edge map as an input channel")
        parser.add_argument("--no_pairing_check", action="store_true",
                            help="do not check that label and image files pair by name")
        return parser

    @staticmethod
    def unknown_label(opt):
        """The label value (after ``remap_label`` / the dontcare mapping) that means "unknown /
        unlabelled", or None when every value is a class: the dontcare channel ``label_nc`` with
        --contain_dontcare_label. Models that treat the unknown class apart (OASIS: channel 0, weight
        0 in its loss) read it here."""
        return opt.label_nc if opt.contain_dontcare_label else None

    @staticmethod
    def validate_options(opt):
        """Sets ``semantic_nc``, the channels of the network input: one-hot labels (+ dontcare)
        (+ the instance edge map). The only place it is computed."""
        require_positive(opt, "label_nc")
        opt.semantic_nc = label_channels(opt) + (0 if opt.no_instance else 1)

    def __init__(self, opt):
        self.opt = opt
        check_preprocess_mode(opt.preprocess_mode)
        label_paths, image_paths, instance_paths = self.get_paths(opt)
        limit = opt.max_dataset_size
        self.label_paths = natural_sorted(label_paths)[:limit]
        self.image_paths = natural_sorted(image_paths)[:limit]
        self.instance_paths = natural_sorted(instance_paths)[:limit] if not opt.no_instance else []
        if not opt.no_instance and not instance_paths:
            raise ValueError(
                f"dataset {opt.dataset_mode!r} found no instance maps but --no_instance is not set; pass "
                "--no_instance or provide the instance maps"
            )
        check_names = not opt.no_pairing_check
        self.check_pairs(self.label_paths, self.image_paths, "image", check_names)
        if self.instance_paths:
            self.check_pairs(self.label_paths, self.instance_paths, "instance map", check_names)
        self.num_label_values = label_channels(opt)

    # ------------------------------------------------------------------ dataset-specific hooks
    def get_paths(self, opt):
        raise NotImplementedError(f"{type(self).__name__} must implement get_paths(opt)")

    def pair_key(self, path):
        """Key that a label file and its photo / instance map share (default: the file stem)."""
        return file_stem(path)

    @staticmethod
    def remap_label(opt, array):
        """Dataset-specific value mapping applied before validation (default: none). Element-wise:
        the data check applies it to a label map's distinct values."""
        return array

    @classmethod
    def label_values(cls, opt, array):
        """Integer values as stored in this dataset's label files -> the label values the models take
        (``remap_label``, then 255 -> ``label_nc`` with --contain_dontcare_label). Needs no files:
        the demo maps uploaded label maps with it."""
        array = cls.remap_label(opt, array)
        if opt.contain_dontcare_label:
            return np.where(array == 255, opt.label_nc, array)
        return array

    @classmethod
    def class_names(cls, opt):
        """Display names of the label values ``0 .. label_nc + contain_dontcare_label - 1`` (the values
        :meth:`label_values` gives): ``class_table[v]`` (the dataset's names, data/class_names.py), else
        'class <v>'; the dontcare value 'unlabeled'."""
        table = cls.class_table
        names = [table[v] if v < len(table) else f"class {v}" for v in range(opt.label_nc)]
        return names + (["unlabeled"] if opt.contain_dontcare_label else [])

    # ------------------------------------------------------------------ checks
    def check_pairs(self, label_paths, other_paths, other_kind, check_names=True):
        """Raise ValueError naming the first label file without its partner (by ``pair_key``, then count)."""
        for label_path, other_path in zip(label_paths, other_paths) if check_names else ():
            if self.pair_key(label_path) != self.pair_key(other_path):
                raise ValueError(
                    f"label/{other_kind} pairing mismatch: {label_path} (key {self.pair_key(label_path)!r}) is "
                    f"paired with {other_path} (key {self.pair_key(other_path)!r}) in natural order; "
                    f"{len(label_paths)} label files vs {len(other_paths)} {other_kind} files. Remove the "
                    "unpaired files (or pass --no_pairing_check if the names differ on purpose)"
                )
        if len(label_paths) != len(other_paths):
            longer = label_paths if len(label_paths) > len(other_paths) else other_paths
            extra = longer[min(len(label_paths), len(other_paths))]
            raise ValueError(
                f"{len(label_paths)} label files but {len(other_paths)} {other_kind} files; first unpaired "
                f"file: {extra}"
            )

    def label_values_problem(self, path, channels):
        """The error naming ``path`` and its values outside ``[0, num_label_values)``, or None;
        ``channels``: the label map's label values (:meth:`label_values`), all or distinct."""
        bad = (channels < 0) | (channels >= self.num_label_values)
        if not bad.any():
            return None
        opt = self.opt
        values = np.unique(channels[bad])
        shown = ", ".join(str(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
        dontcare = " (value 255 = dontcare maps to label_nc)" if opt.contain_dontcare_label else ""
        return (f"label map {path} contains value(s) {shown} outside the valid range "
                f"[0, {self.num_label_values - 1}] for --label_nc {opt.label_nc}"
                f"{' with --contain_dontcare_label' if opt.contain_dontcare_label else ''}{dontcare}")

    def load_label(self, path):
        """Read, remap and validate one label map -> int64 array [H,W] of channel indices."""
        array = self.label_values(self.opt, read_integer_map(path, "label map"))
        problem = self.label_values_problem(path, array)
        if problem:
            raise ValueError(problem)
        return array

    # ------------------------------------------------------------------ the data check
    def data_files(self):
        files = [(p, "label") for p in self.label_paths] + [(p, "image") for p in self.image_paths]
        return files + [(p, "instance") for p in self.instance_paths]

    def data_problems(self, facts):
        """Every problem ``__getitem__`` would raise, from the files' facts: unreadable files, label
        values out of range, sizes that do not fit together or are too small for the crop."""
        opt = self.opt
        problems = []
        instance_paths = self.instance_paths or [None] * len(self.label_paths)
        for label_path, image_path, instance_path in zip(self.label_paths, self.image_paths, instance_paths):
            label, image = facts[label_path]["label"], facts[image_path]["image"]
            instance = facts[instance_path]["instance"] if instance_path else {}
            for path, found in ((label_path, label), (image_path, image), (instance_path, instance)):
                if "error" in found:
                    problems.append((path, found["error"]))
            if "error" in label:
                continue
            values = self.label_values(opt, np.asarray(label["values"], dtype=np.int64))
            problem = self.label_values_problem(label_path, values)
            if problem:
                problems.append((label_path, problem))
            label_size = tuple(label["size"])
            problem = crop_problem(opt, label_size)
            if problem:
                problems.append((label_path, f"label map {label_path}: {problem}"))
            if "size" in image:
                problem = pair_size_problem(opt, image_path, tuple(image["size"]), label_path, label_size)
                if problem:
                    problems.append((image_path, problem))
            if "size" in instance:
                problem = instance_size_problem(instance_path, tuple(instance["size"]), label_path, label_size)
                if problem:
                    problems.append((instance_path, problem))
        return problems

    # ------------------------------------------------------------------ Dataset API
    def __len__(self):
        return len(self.label_paths)

    def __getitem__(self, index):
        opt = self.opt
        label_path = self.label_paths[index]
        label = self.load_label(label_path)
        height, width = label.shape
        problem = crop_problem(opt, (width, height))
        if problem:
            raise ValueError(f"label map {label_path}: {problem}")
        rng = np.random.default_rng([int(opt.seed), int(self.epoch), int(index)])
        params = get_params(opt, (width, height), rng)
        label_tensor = transform_map(label, opt, params)

        image_path = self.image_paths[index]
        image = read_rgb(image_path)
        problem = pair_size_problem(opt, image_path, image.size, label_path, (width, height))
        if problem:
            raise ValueError(problem)
        image_tensor = transform_image(image, opt, params)
        if image_tensor.shape[1:] != label_tensor.shape[1:]:
            raise ValueError(
                f"image {image_path} ({image.size[0]}x{image.size[1]}) and label map {label_path} "
                f"({width}x{height}) give different sizes after preprocessing: "
                f"{tuple(image_tensor.shape[1:])} vs {tuple(label_tensor.shape[1:])}"
            )

        if opt.no_instance:
            instance_tensor = torch.zeros_like(label_tensor)
        else:
            instance_path = self.instance_paths[index]
            instance = read_integer_map(instance_path, "instance map")
            problem = instance_size_problem(instance_path, (instance.shape[1], instance.shape[0]), label_path,
                                            (width, height))
            if problem:
                raise ValueError(problem)
            instance_tensor = transform_map(instance, opt, params)

        return self.postprocess({
            "label": label_tensor,
            "instance": instance_tensor,
            "image": image_tensor,
            "path": image_path,
            "label_path": label_path,
        })

    def postprocess(self, sample):
        """Hook for dataset-specific changes of a finished sample (default: none)."""
        return sample
