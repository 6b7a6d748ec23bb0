"""Convert CelebAMask-HQ part masks into 19-class label maps for ``--dataset_mode celebamask_hq``.

Input (the release as downloaded and unzipped)::

    <src>/CelebA-HQ-img/<id>.jpg                                  (1024x1024 photos, id 0..29999)
    <src>/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png (512x512 binary part masks)
    <src>/CelebA-HQ-to-CelebA-mapping.txt                         (only for --partition_file)

Output under ``--dst`` (default ./datasets/celebamask_hq)::

    {train,val,test}_label/<id>.png   8-bit class ids 0..18, 512x512
    {train,val,test}_img/<id>.jpg     photos resized to --image_size (0 keeps the originals)

Classes, in this order (a later part overwrites an earlier one where masks overlap, as in the
dataset's own conversion script): background, skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear,
r_ear, mouth, u_lip, l_lip, hair, hat, ear_r, neck_l, neck, cloth.

Split: with ``--partition_file list_eval_partition.txt`` (from CelebA) the official CelebA split is
followed through the mapping file (0 train, 1 val, 2 test); otherwise the last ``--test_count`` ids form
the test split and the rest the training split.

Usage: python datasets/prepare_celebamask_hq.py --src /data/CelebAMask-HQ --dst ./datasets/celebamask_hq
"""

import argparse
import logging
import os
import shutil
import sys
from multiprocessing import Pool

import numpy as np
from PIL import Image

logger = logging.getLogger("prepare_celebamask_hq")

PARTS = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
         "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
IDS_PER_MASK_FOLDER = 2000
PARTITION_NAMES = {0: "train", 1: "val", 2: "test"}


def build_label_map(mask_root, image_id):
    """19-class label map (uint8 [H,W]) of one face from its part masks; background where no mask."""
    folder = os.path.join(mask_root, str(image_id // IDS_PER_MASK_FOLDER))
    label = None
    for cls, part in enumerate(PARTS[1:], start=1):
        path = os.path.join(folder, f"{image_id:05d}_{part}.png")
        if not os.path.isfile(path):
            continue  # the part is not visible on this face
        try:
            with Image.open(path) as img:
                mask = np.array(img.convert("L")) > 127
        except (OSError, SyntaxError) as err:
            raise OSError(f"cannot read part mask {path}: {err}") from err
        if label is None:
            label = np.zeros(mask.shape, np.uint8)
        elif mask.shape != label.shape:
            raise ValueError(f"part mask {path} is {mask.shape[1]}x{mask.shape[0]}, the other masks of face "
                             f"{image_id} are {label.shape[1]}x{label.shape[0]}")
        label[mask] = cls
    if label is None:
        raise FileNotFoundError(f"no part masks for face {image_id} in {folder} (expected {image_id:05d}_<part>.png)")
    return label


def read_split(src, image_ids, partition_file, test_count):
    """{image id: 'train' | 'val' | 'test'}."""
    if partition_file is None:
        if not 0 <= test_count <= len(image_ids):
            raise ValueError(f"--test_count {test_count} must lie in [0, {len(image_ids)}]")
        cut = len(image_ids) - test_count
        return {i: ("train" if n < cut else "test") for n, i in enumerate(image_ids)}
    mapping_path = os.path.join(src, "CelebA-HQ-to-CelebA-mapping.txt")
    for path in (mapping_path, partition_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (needed for the official split)")
    partition = {}
    with open(partition_file, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 2 and fields[1].isdigit():
                partition[fields[0]] = int(fields[1])
    split = {}
    with open(mapping_path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 3 and fields[0].isdigit():  # idx orig_idx orig_file; skips the header
                if fields[2] not in partition:
                    raise ValueError(f"{fields[2]} (CelebA-HQ id {fields[0]}) is not in {partition_file}")
                split[int(fields[0])] = PARTITION_NAMES[partition[fields[2]]]
    missing = [i for i in image_ids if i not in split]
    if missing:
        raise ValueError(f"{len(missing)} photos (first: {missing[0]}.jpg) are not in {mapping_path}")
    return split


def _atomic_save(img, path, **kwargs):
    tmp = f"{path}.tmp{os.path.splitext(path)[1]}"
    img.save(tmp, **kwargs)
    os.replace(tmp, path)


def convert_one(job):
    image_id, split, src, dst, image_size, overwrite = job
    label_path = os.path.join(dst, f"{split}_label", f"{image_id}.png")
    image_path = os.path.join(dst, f"{split}_img", f"{image_id}.jpg")
    if not overwrite and os.path.isfile(label_path) and os.path.isfile(image_path):
        return
    label = build_label_map(os.path.join(src, "CelebAMask-HQ-mask-anno"), image_id)
    _atomic_save(Image.fromarray(label), label_path)
    source = os.path.join(src, "CelebA-HQ-img", f"{image_id}.jpg")
    if image_size:
        try:
            with Image.open(source) as img:
                photo = img.convert("RGB").resize((image_size, image_size), Image.BICUBIC)
        except (OSError, SyntaxError) as err:
            raise OSError(f"cannot read image {source}: {err}") from err
        _atomic_save(photo, image_path, quality=95)
    else:
        shutil.copyfile(source, image_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="unzipped CelebAMask-HQ folder")
    parser.add_argument("--dst", default="./datasets/celebamask_hq", help="output dataroot")
    parser.add_argument("--partition_file", default=None,
                        help="CelebA list_eval_partition.txt: follow the official train/val/test split")
    parser.add_argument("--test_count", type=int, default=2000,
                        help="without --partition_file: the last N ids form the test split")
    parser.add_argument("--image_size", type=int, default=512, help="resize photos to this size; 0 copies them")
    parser.add_argument("--max_images", type=int, default=None, help="convert only the first N ids (for a try)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--overwrite", action="store_true", help="redo files that already exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    image_dir = os.path.join(args.src, "CelebA-HQ-img")
    mask_dir = os.path.join(args.src, "CelebAMask-HQ-mask-anno")
    for folder, what in ((image_dir, "<id>.jpg photos"), (mask_dir, "<k>/<id:05d>_<part>.png part masks")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"folder {folder} does not exist; expected {what} of the CelebAMask-HQ release")
    image_ids = sorted(int(os.path.splitext(n)[0]) for n in os.listdir(image_dir)
                       if n.endswith(".jpg") and os.path.splitext(n)[0].isdigit())
    if not image_ids:
        raise FileNotFoundError(f"no <id>.jpg photos in {image_dir}")
    split = read_split(args.src, image_ids, args.partition_file, args.test_count)
    if args.max_images is not None:
        image_ids = image_ids[: args.max_images]
    for name in set(split[i] for i in image_ids):
        os.makedirs(os.path.join(args.dst, f"{name}_label"), exist_ok=True)
        os.makedirs(os.path.join(args.dst, f"{name}_img"), exist_ok=True)
    jobs = [(i, split[i], args.src, args.dst, args.image_size, args.overwrite) for i in image_ids]
    if args.workers > 1:
        with Pool(args.workers) as pool:
            for n, _ in enumerate(pool.imap_unordered(convert_one, jobs, chunksize=16), 1):
                if n % 1000 == 0:
                    logger.info("%d / %d faces converted", n, len(jobs))
    else:
        for job in jobs:
            convert_one(job)
    counts = {name: sum(1 for i in image_ids if split[i] == name) for name in ("train", "val", "test")}
    logger.info("wrote %s to %s", ", ".join(f"{v} {k}" for k, v in counts.items() if v), args.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
