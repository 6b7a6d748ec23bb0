"""The data check before a run: every file of the split read once, all problems reported together.

``check_dataset(opt)`` (exported as ``data.check_dataset``) builds the dataset's file lists (which
also checks the folders and the label/photo pairing), reads what each file needs (see
:func:`inspect_file`) and asks the dataset which samples would fail (``BaseDataset.data_problems``).
Bad files raise one :class:`util.errors.DataError` listing every problem, with the messages the data
loader would raise; train.py and test.py call it right after parsing the options, before any network
is built or any file of the run is written. With ``--skip_data_check`` nothing is checked up front
(the loader still checks every sample it reads).

Cost per file (measured with Pillow 13 on a 1024x512 photo): a PNG photo or instance map is opened and
``verify()``-ed (every chunk's CRC: a truncated PNG fails, 0.8 ms against 13 ms for a full decode); a
JPEG photo is decoded at 1/8 scale (``draft``; ``verify()`` checks nothing for JPEG and a truncated
JPEG only fails when decoded; the reduced decode still reads the whole entropy-coded stream and
fails the same way); other formats are decoded. Label maps are decoded (their values are needed) and
their distinct values found with ``np.bincount`` (8/16-bit) or ``np.unique``.

What was read is cached by (path, size, mtime) in a JSON file, so a second start reads nothing: the
facts are cached, not the verdicts, so changing ``--label_nc`` or the preprocessing needs no new read.
The cache is ``<root>/.dagan_data_check.json``, ``<root>`` being ``--dataroot`` when every checked file
lies under it, else the folder common to the files; when that folder is not writable (or is the
filesystem root), ``$XDG_CACHE_HOME/dagan/data_check/<hash of root>.json`` (default ``~/.cache/...``).

The photos' sizes come with the check, so a run whose photos have another aspect ratio than
``--aspect_ratio`` gets one warning naming an example file and what the preprocessing does to it.
"""

import concurrent.futures
import hashlib
import json
import logging
import os
import sys
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from data.base_dataset import resized_size
from data.pix2pix_dataset import DECODE_ERRORS, decode_integer_map, float_map_message, unreadable_message
from util.distributed import barrier, is_main_process
from util.errors import DataError
from util.util import atomic_open

logger = logging.getLogger(__name__)

# PIL modes of single-channel integer maps.
INTEGER_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")
# kind of file -> how messages name it
KINDS = {"image": "image", "label": "label map", "instance": "instance map"}
CACHE_NAME = ".dagan_data_check.json"
CACHE_FORMAT = "dagan-data-check"
CACHE_VERSION = 1  # bump when inspect_file's facts change
# At most this many problems are listed in the error; all of them go to a report file next to the cache.
MAX_LISTED = 200
# Relative difference of aspect ratios below which an image counts as having the --aspect_ratio.
ASPECT_TOLERANCE = 0.01


# ------------------------------------------------------------------------------------------------
# one file

def _distinct_values(array):
    """Sorted distinct values of an integer map, as a list of ints."""
    if array.dtype in (np.uint8, np.uint16):
        return np.flatnonzero(np.bincount(array.ravel())).tolist()
    return np.unique(array).tolist()


def _check_photo(img):
    """Decode ``img`` (an open PIL image) as cheaply as catches a truncated or corrupt file."""
    if img.format == "PNG":
        img.verify()
    elif img.format == "JPEG":
        img.draft("RGB", (1, 1))  # DCT scaling: 1/8 of the size, the whole stream still decoded
        img.load()
    else:
        img.load()


def inspect_file(path, kind):
    """Read what the check needs of one file -> facts (a JSON-able dict).

    ``{'size': [w, h]}`` for a photo or instance map, plus ``'values'`` (the distinct stored values)
    for a label map; ``{'error': message}`` when the file cannot be used (the loader's message).
    """
    name = KINDS[kind]
    try:
        with Image.open(path) as img:
            size = [int(img.size[0]), int(img.size[1])]
            if kind == "instance" and img.mode == "F":
                return {"error": float_map_message(path, name)}
            # Label maps are decoded for their values; so is a colour instance map (a grey map saved
            # as RGB is accepted when its channels are equal).
            decode = kind == "label" or (kind == "instance" and img.mode not in INTEGER_MODES)
            if kind == "label" and img.mode in ("L", "P"):
                # 8-bit values (palette indices for 'P', as the loader reads them): PIL's histogram
                # counts them in C, without the array copy and bincount of the general path.
                img.load()
                return {"size": size, "values": [v for v, n in enumerate(img.histogram()) if n]}
            if not decode:
                _check_photo(img)
    except DECODE_ERRORS as err:
        return {"error": unreadable_message(path, name, err)}
    if decode:
        try:
            array = decode_integer_map(path, name)
        except (OSError, ValueError) as err:  # the loader's messages
            return {"error": str(err)}
        if kind == "label":
            return {"size": size, "values": _distinct_values(array)}
    return {"size": size}


# ------------------------------------------------------------------------------------------------
# the cache

def user_cache_dir():
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "dagan", "data_check")


def _writable_dir(folder):
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK) and os.path.dirname(folder) != folder


def cache_path(dataroot, paths):
    """Where the facts of ``paths`` are cached (see the module docstring)."""
    root = os.path.abspath(dataroot) if dataroot else None
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if root is None or os.path.commonpath([root, *folders]) != root:
        root = os.path.commonpath(folders)
    if _writable_dir(root):
        return os.path.join(root, CACHE_NAME)
    digest = hashlib.sha1(root.encode("utf-8")).hexdigest()[:16]
    return os.path.join(user_cache_dir(), f"{digest}.json")


def read_cache(path):
    """{absolute path: {'size', 'mtime_ns', 'facts': {kind: facts}}}; {} when missing or unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("data check: ignoring the unreadable cache %s (%s)", path, err)
        return {}
    if not isinstance(content, dict) or content.get("format") != CACHE_FORMAT or content.get("version") != CACHE_VERSION:
        return {}
    files = content.get("files")
    return files if isinstance(files, dict) else {}


def write_cache(path, entries):
    """Write the cache atomically, without the entries of files that no longer exist."""
    entries = {p: e for p, e in entries.items() if os.path.exists(p)}
    text = json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION, "files": entries}, separators=(",", ":"))
    try:
        with atomic_open(path, binary=False) as f:
            f.write(text)
    except OSError as err:
        logger.warning("data check: cannot write the cache %s (%s); the next start reads the files again",
                       path, err)


def collect_facts(files, entries, progress=True):
    """Facts of ``files`` ([(path, kind)]) from the cache ``entries`` where size and mtime still match,
    else read by :func:`inspect_file` (in threads; the entries are updated). Returns
    ({path: {kind: facts}}, number of files read)."""
    facts, todo = {}, []
    for path, kind in files:
        key = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError as err:
            facts.setdefault(path, {})[kind] = {"error": unreadable_message(path, KINDS[kind], err)}
            continue
        entry = entries.get(key)
        if not (isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
                and isinstance(entry.get("facts"), dict)):
            entry = entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "facts": {}}
        if kind in entry["facts"]:
            facts.setdefault(path, {})[kind] = entry["facts"][kind]
        else:
            todo.append((path, kind, entry))
    if todo:
        workers = min(len(todo), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        bar = tqdm(total=len(todo), desc="checking the data", unit="file", delay=1.0, leave=False,
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        with bar, concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = pool.map(lambda item: inspect_file(item[0], item[1]), todo)
            for (path, kind, entry), found in zip(todo, results):
                entry["facts"][kind] = found
                facts.setdefault(path, {})[kind] = found
                bar.update(1)
    return facts, len(todo)


# ------------------------------------------------------------------------------------------------
# the check of a run

def aspect_ratio_warning(opt, sizes):
    """One warning text when photos (``sizes``: {path: (w, h)}) have another aspect ratio than
    ``--aspect_ratio`` (naming the first such file and what the preprocessing makes of it), else None."""
    target = opt.aspect_ratio
    off = [(p, s) for p, s in sizes.items() if abs(s[0] / s[1] / target - 1) > ASPECT_TOLERANCE]
    if not off:
        return None
    path, (w, h) = off[0]
    new_w, new_h = resized_size(opt, (w, h))
    distorted = abs((new_w / new_h) / (w / h) - 1) > ASPECT_TOLERANCE
    effect = f"resizes it to {new_w}x{new_h}" + (" (distorting it)" if distorted else "")
    if "crop" in opt.preprocess_mode:
        effect += f" and crops {opt.crop_size}x{opt.crop_size}"
    out_h = int(round(opt.crop_size / target))
    return (f"{len(off)} of {len(sizes)} images have another aspect ratio than --aspect_ratio {target:g}, e.g. "
            f"{path}: {w}x{h} (aspect {w / h:.3g}); --preprocess_mode {opt.preprocess_mode} {effect}, and the "
            f"generator makes {opt.crop_size}x{out_h} images. To keep the images' shape use --preprocess_mode "
            f"fixed --aspect_ratio {w / h:.4g} (--crop_size is then the width), or crop the images yourself")


def _splits(opt):
    """[(description, options)] of the splits a run reads: its own, and for training the val split
    when it is evaluated during or after training (--eval_freq; the synthetic layout score)."""
    splits = [(f"{opt.phase} split", opt)]
    from util.layout_score import has_exact_score

    if opt.isTrain and (opt.eval_freq > 0 or has_exact_score(opt)):
        from util.train_eval import val_options
        splits.append(("val split (evaluated during training)", val_options(opt)))
    return splits


def _error(problems, n_files, mode, where, cache_file):
    bad_files = len({path for path, _ in problems})
    lines = [f"data check: {bad_files} of {n_files} files of the {where} (--dataset_mode {mode}) cannot be "
             f"used ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    lines += [f"  {message}" for _, message in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        report = os.path.join(os.path.dirname(cache_file), ".dagan_data_check_problems.txt")
        try:
            with atomic_open(report, binary=False) as f:
                f.write("\n".join(message for _, message in problems) + "\n")
            where_all = f"all {len(problems)} are listed in {report}"
        except OSError:
            where_all = "all are in DataError.problems"
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more ({where_all})")
    lines.append("Nothing was started. Fix or remove these files (or correct the options named above); "
                 "--skip_data_check skips this check.")
    return DataError("\n".join(lines), problems)


def check_dataset(opt):
    """Check every file the run will read; return quietly when all are fine, else raise
    :class:`util.errors.DataError` listing every problem. See the module docstring."""
    from data import find_dataset_using_name

    if opt.skip_data_check:
        logger.info("--skip_data_check: the files of the %s split are checked only when loaded", opt.phase)
        return
    datasets = [(where, find_dataset_using_name(o.dataset_mode)(o)) for where, o in _splits(opt)]
    start = time.time()
    files = list(dict.fromkeys(f for _, ds in datasets for f in ds.data_files()))
    if not files:
        return
    cache_file = cache_path(opt.dataroot, [p for p, _ in files])
    main = is_main_process()
    if not main:
        barrier()  # rank 0 reads the files first and writes the cache; the others then read the cache
    try:
        entries = read_cache(cache_file)
        facts, n_read = collect_facts(files, entries, progress=main)
        if main and n_read:
            write_cache(cache_file, entries)
    finally:
        if main:
            barrier()
    problems, where = {}, []  # the val split may read the same files: each problem once
    for what, ds in datasets:
        found = [p for p in ds.data_problems(facts) if p not in problems]
        if found:
            where.append(what)
        problems.update(dict.fromkeys(found))
    problems = list(problems)
    if problems:
        raise _error(problems, len(files), opt.dataset_mode, " and the ".join(where), cache_file)
    if main:
        sizes = {p: tuple(facts[p]["image"]["size"]) for p, kind in datasets[0][1].data_files() if kind == "image"}
        warning = aspect_ratio_warning(opt, sizes)
        if warning:
            logger.warning(warning)
    logger.info("data check: the %d files of the %s are fine (%.1f s; %d read, %d from the cache %s)", len(files),
                " and the ".join(w for w, _ in datasets), time.time() - start, n_read, len(files) - n_read, cache_file)
