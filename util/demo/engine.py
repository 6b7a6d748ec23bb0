"""The painting demo's engine: one trained model in memory, label maps in, images out.

Everything the page sends is checked here (sizes, label values, image files) and a problem is a
:class:`DemoInputError` whose message the page shows; the server never runs two generations of the
model at once (:class:`GenerationQueue`, first come first served).

Label maps travel as the *label values the model takes* (what the dataset's loader yields after its
mapping, ``0 .. n - 1``; the values of test.py's ``input_label`` pictures): raw bytes, one byte per
pixel (two, little-endian, when a dataset has more than 256 values), row-major, base64-encoded.
"""
import argparse
import base64
import binascii
import collections
import contextlib
import io
import logging
import threading
import time

import numpy as np
import torch
from PIL import Image

import data
from data.base_dataset import generated_size, transform_image, transform_map
from util import util
from util.errors import UserError
from util.inference import inference_autocast

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 16 * 1024 * 1024  # an uploaded label map or style image
MAX_FILE_PIXELS = 4096 * 4096
SNAP_DISTANCE = 24.0  # an uploaded colour this close (RGB, Euclidean) to a palette colour is that class
VAL_PICKS = 240  # val label maps offered in the picker (the first ones, in the dataset's order)
THUMBNAIL_SIDE = 96


class DemoInputError(UserError, ValueError):
    """Input of the page the demo cannot use; the message is shown on the page."""


class GenerationQueue:
    """First come, first served: one generation at a time. ``turn(ticket)`` waits for its turn and
    yields how many requests were ahead on arrival; ``position(ticket)`` tells a waiting page where
    its request is (``'running'``, the count of requests ahead, or None when unknown / done)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._waiting = []
        self._running = None
        self.most_at_once = 0  # most generations that ever ran at the same time (1 if the queue works)
        self._at_once = 0

    @contextlib.contextmanager
    def turn(self, ticket):
        with self._cond:
            ahead = len(self._waiting) + (self._running is not None)
            self._waiting.append(ticket)
            while self._running is not None or self._waiting[0] != ticket:
                self._cond.wait()
            self._waiting.pop(0)
            self._running = ticket
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            yield ahead
        finally:
            with self._cond:
                self._at_once -= 1
                self._running = None
                self._cond.notify_all()

    def position(self, ticket):
        with self._cond:
            if ticket is not None and ticket == self._running:
                return "running"
            if ticket in self._waiting:
                return self._waiting.index(ticket) + (self._running is not None)
            return None


def png_bytes(array):
    """uint8 array [H,W,3] or [H,W] -> PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def open_image_file(content, what):
    """Bytes of an uploaded image file -> a loaded PIL image; DemoInputError when it is too large or
    not an image PIL can read."""
    if len(content) > MAX_FILE_BYTES:
        raise DemoInputError(f"{what}: {len(content) / 2**20:.1f} MB; at most {MAX_FILE_BYTES // 2**20} MB")
    try:
        img = Image.open(io.BytesIO(content))
        if img.width * img.height > MAX_FILE_PIXELS:
            raise DemoInputError(f"{what}: {img.width}x{img.height} pixels; at most {MAX_FILE_PIXELS:,} pixels "
                                 f"(4096x4096)")
        img.load()
    except Image.UnidentifiedImageError:
        raise DemoInputError(f"{what}: not an image file (PNG, JPEG, ...) this demo can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, DemoInputError):
            raise
        raise DemoInputError(f"{what}: a damaged or unsupported image file ({err})") from None
    return img


class DemoEngine:
    """One model of a trained run, ready for the page.

    ``opt``: the run's options (test options: demo.py reads the run's opt.json); ``model``: the model,
    its inference networks loaded, in eval mode; ``val``: the dataset of the run's test split (the
    picker's label maps) or None, ``val_note`` then says why there is none.
    """

    def __init__(self, opt, model, loaded=None, val=None, val_note=None):
        self.opt = opt
        self.model = model
        self.loaded = dict(loaded or {})
        dataset_cls = data.find_dataset_using_name(opt.dataset_mode)
        self.dataset_cls = dataset_cls
        colouring = util.label_colouring(opt)
        self.num_values = colouring["n_label"]
        self.palette = util.label_colours(**colouring)
        self.names = list(dataset_cls.class_names(opt))
        if len(self.names) != self.num_values:
            raise ValueError(f"{dataset_cls.__name__}.class_names gives {len(self.names)} names for "
                             f"{self.num_values} label values")
        unknown = dataset_cls.unknown_label(opt)
        self.unknown = unknown
        self.blank = unknown if unknown is not None else 0
        self.width, self.height = generated_size(opt)
        self.dtype = np.uint8 if self.num_values <= 256 else np.dtype("<u2")
        self.val = val
        self.val_note = val_note
        self.queue = GenerationQueue()
        self.received = collections.deque(maxlen=16)  # the label maps of the last generations
        self.generations = 0
        # the geometry of the canvas as a preprocessing: resize to exactly (width, height), no crop / flip
        self._to_canvas = argparse.Namespace(preprocess_mode="fixed", crop_size=opt.crop_size,
                                             aspect_ratio=opt.aspect_ratio)

    # ------------------------------------------------------------------ what the page needs
    def info(self):
        model = self.model
        return {
            "name": self.opt.name,
            "model": self.opt.model,
            "generator": getattr(self.opt, "netG", None),
            "dataset_mode": self.opt.dataset_mode,
            "which_epoch": self.opt.which_epoch,
            "weights": {k: v.replace("\\", "/").split("/")[-1] for k, v in self.loaded.items()},
            "width": self.width,
            "height": self.height,
            "bytes_per_value": int(np.dtype(self.dtype).itemsize),
            "classes": [{"value": v, "name": self.names[v], "color": [int(c) for c in self.palette[v]]}
                        for v in range(self.num_values)],
            "blank": self.blank,
            "eraser": self.blank,
            "unknown": self.unknown,
            "seed": int(self.opt.seed),
            "noise": bool(model.draws_noise),
            "resample_class": bool(model.resamples_classes and model.draws_noise),
            "style_image": bool(model.takes_style_image),
            "extras": list(model.extra_visual_names),
            "val": [{"index": i, "stem": self.val_stem(i)} for i in range(self.val_count())],
            "val_total": len(self.val) if self.val is not None else 0,
            "val_note": self.val_note,
            "max_file_mb": MAX_FILE_BYTES // 2**20,
        }

    # ------------------------------------------------------------------ label maps
    def encode_labels(self, labels):
        return base64.b64encode(np.ascontiguousarray(labels, dtype=self.dtype).tobytes()).decode("ascii")

    def decode_labels(self, payload):
        """The label map of a request ({'width', 'height', 'labels': base64}) -> int64 array [H,W]."""
        if not isinstance(payload, dict):
            raise DemoInputError("the request is not a JSON object")
        width, height = payload.get("width"), payload.get("height")
        if (width, height) != (self.width, self.height):
            raise DemoInputError(f"label map of {width}x{height} pixels; this model takes "
                                 f"{self.width}x{self.height}")
        text = payload.get("labels")
        if not isinstance(text, str):
            raise DemoInputError("the request has no label map ('labels')")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DemoInputError("the label map is not valid base64") from None
        itemsize = np.dtype(self.dtype).itemsize
        if len(raw) != self.width * self.height * itemsize:
            raise DemoInputError(f"the label map has {len(raw)} bytes; {self.width}x{self.height} pixels "
                                 f"take {self.width * self.height * itemsize}")
        labels = np.frombuffer(raw, dtype=self.dtype).reshape(self.height, self.width).astype(np.int64)
        self.check_values(labels, "the label map")
        return labels

    def check_values(self, labels, what):
        bad = labels >= self.num_values
        if bad.any():
            y, x = np.argwhere(bad)[0]
            values = np.unique(labels[bad])
            shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
            raise DemoInputError(
                f"{what} has label value(s) {shown} ({plural(int(bad.sum()), 'pixel')}, the first at x={x}, y={y}); "
                f"this model knows the values 0..{self.num_values - 1} ({self.opt.dataset_mode})")

    def to_canvas(self, labels):
        """An int map of any size -> the canvas size (nearest neighbour, as the loaders resize)."""
        if labels.shape == (self.height, self.width):
            return labels
        return transform_map(labels, self._to_canvas, {"crop_pos": None, "flip": False})[0].numpy()

    def decode_upload(self, content, filename="upload"):
        """An uploaded label PNG -> ({'labels': base64, 'notes': [...]}).

        Single-channel files (8/16/32-bit grey, palette indices) hold values as the dataset's label
        files do (the dataset's mapping applies, e.g. COCO-Stuff's 255 = unlabeled); RGB / RGBA files
        hold colours, each snapped to the nearest palette colour within :data:`SNAP_DISTANCE` (test.py's
        ``input_label`` pictures load back exactly, but for values that share a colour in the dataset's
        palette: Cityscapes' official colours give ids 0-4 black, they load as 0). Other sizes are
        resized to the canvas."""
        what = f"label map {filename}"
        img = open_image_file(content, what)
        notes = []
        if img.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
            labels = self.snap_colours(np.asarray(img.convert("RGB")), what)
        elif img.mode == "F":
            raise DemoInputError(f"{what} holds floating-point values; expected integer class ids or colours")
        else:
            labels = self.dataset_cls.label_values(self.opt, np.asarray(img).astype(np.int64))
            bad = labels < 0
            if bad.any():
                raise DemoInputError(f"{what}: negative label values after the dataset's mapping")
            self.check_values(labels, what)
        if labels.shape != (self.height, self.width):
            notes.append(f"resized from {labels.shape[1]}x{labels.shape[0]} to {self.width}x{self.height} "
                         f"(nearest neighbour)")
            labels = self.to_canvas(labels)
        return {"labels": self.encode_labels(labels), "notes": notes}

    def snap_colours(self, rgb, what):
        """uint8 [H,W,3] -> label values [H,W]: the nearest palette colour (the lowest value among equal
        colours); DemoInputError naming a colour farther than SNAP_DISTANCE from every palette colour."""
        colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
        distance = np.linalg.norm(colours[:, None, :].astype(np.float64)
                                  - self.palette[None, :, :].astype(np.float64), axis=2)
        nearest = distance.argmin(axis=1)  # argmin takes the first minimum: the lowest value
        off = distance[np.arange(len(colours)), nearest] > SNAP_DISTANCE
        if off.any():
            flat = inverse.reshape(-1)
            pixels = np.isin(flat, np.flatnonzero(off))
            first = int(np.flatnonzero(pixels)[0])
            colour = tuple(int(c) for c in rgb.reshape(-1, 3)[first])
            y, x = divmod(first, rgb.shape[1])
            k = int(nearest[inverse.reshape(-1)[first]])
            raise DemoInputError(
                f"{what}: colour {colour} at x={x}, y={y} is not in the {self.opt.dataset_mode} palette "
                f"({plural(int(pixels.sum()), 'pixel')}, {plural(int(off.sum()), 'colour')} off the palette; the nearest class "
                f"colour is {self.names[k]} {tuple(int(c) for c in self.palette[k])}). Upload colours of the "
                f"palette, or a single-channel PNG of class ids")
        return nearest[inverse.reshape(-1)].reshape(rgb.shape[:2]).astype(np.int64)

    def label_png(self, labels):
        """A label map -> PNG of its label values (8-bit grey, 16-bit when values exceed 255)."""
        if self.num_values <= 256:
            return png_bytes(labels.astype(np.uint8))
        buffer = io.BytesIO()
        Image.fromarray(labels.astype(np.uint16)).save(buffer, format="PNG")
        return buffer.getvalue()

    # ------------------------------------------------------------------ the val picker
    def val_count(self):
        return min(len(self.val), VAL_PICKS) if self.val is not None else 0

    def val_stem(self, index):
        path = self.val.label_paths[index]
        return path.replace("\\", "/").split("/")[-1].rsplit(".", 1)[0]

    def val_labels(self, index):
        if not 0 <= index < self.val_count():
            raise DemoInputError(f"val label map {index}: the picker offers 0..{self.val_count() - 1}")
        return self.to_canvas(self.val[index]["label"][0].numpy())

    def val_thumbnail(self, index):
        labels = self.val_labels(index)
        scale = max(1, THUMBNAIL_SIDE // max(labels.shape))
        colour = self.palette[labels].repeat(scale, axis=0).repeat(scale, axis=1)
        return png_bytes(colour)

    # ------------------------------------------------------------------ generation
    def style_tensor(self, text):
        """A data URL / base64 of an image file -> [1,3,H,W] in [-1, 1] at the canvas size (bicubic,
        as the loaders resize photos)."""
        if "," in text[:100] and text.startswith("data:"):
            text = text.split(",", 1)[1]
        try:
            content = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DemoInputError("the style image is not valid base64") from None
        img = open_image_file(content, "style image").convert("RGB")
        return transform_image(img, self._to_canvas, {"crop_pos": None, "flip": False})[None]

    def batch(self, labels, style=None):
        """The batch dict of the semantic datasets for one painted map. A painting has no instance
        map: each class region is one instance (the label map is the instance map), so the edge map of
        instance-aware models marks the class borders."""
        label = torch.from_numpy(labels)[None, None].long()
        image = style if style is not None else torch.zeros(1, 3, self.height, self.width)
        return {"label": label, "instance": label.clone(), "image": image, "path": ["painted"]}

    def parse_seeds(self, payload):
        seed = payload.get("seed", self.opt.seed)
        class_seeds = payload.get("class_seeds") or {}
        if not isinstance(seed, int) or not isinstance(class_seeds, dict):
            raise DemoInputError("'seed' must be an integer and 'class_seeds' an object {value: seed}")
        try:
            class_seeds = {int(k): int(v) for k, v in class_seeds.items()}
        except (TypeError, ValueError):
            raise DemoInputError("'class_seeds' must map label values to integer seeds") from None
        if class_seeds and not (self.model.resamples_classes and self.model.draws_noise):
            raise DemoInputError(f"{self.opt.model} cannot re-sample the noise of one class")
        for value in class_seeds:
            if not 0 <= value < self.num_values:
                raise DemoInputError(f"class_seeds: {value} is not a label value of this model")
        return seed % 2**63, {k: v % 2**63 for k, v in class_seeds.items()}

    def generate(self, payload):
        """One generation request of the page -> {'image': data URL, 'extras': [...], 'ms', 'ahead'}.

        ``payload``: {'width', 'height', 'labels', 'seed', 'class_seeds', 'style', 'ticket'}. Checked in
        full before it queues; then it waits for its turn (one generation at a time)."""
        labels = self.decode_labels(payload)
        seed, class_seeds = self.parse_seeds(payload)
        style = payload.get("style")
        if style is not None and not self.model.takes_style_image:
            raise DemoInputError("this model takes no style image (--use_vae models do)")
        style = self.style_tensor(style) if isinstance(style, str) and style else None
        batch = self.batch(labels, style)
        model, opt = self.model, self.opt
        extras = bool(model.extra_visual_names)
        waited = time.perf_counter()
        with self.queue.turn(payload.get("ticket")) as ahead:
            start = time.perf_counter()
            self.received.append(labels.copy())
            # A VAE model without a style image draws z from N(0, I) (test.py's --sample_z).
            previous = getattr(opt, "sample_z", False)
            opt.sample_z = model.takes_style_image and style is None
            try:
                with torch.no_grad(), inference_autocast(opt):
                    out = model.inference_seeded(batch, seed, class_seeds, extras=extras)
            finally:
                opt.sample_z = previous
            self.generations += 1
            ms = (time.perf_counter() - start) * 1000
        fake_name = model.evaluation_pair[1] if model.evaluation_pair else "synthesized_image"
        image = util.tensor2im(out[fake_name][0].float(), model.image_rounding)
        result = {"image": data_url(png_bytes(image)), "width": int(image.shape[1]), "height": int(image.shape[0]),
                  "ms": round(ms, 1), "waited_ms": round((start - waited) * 1000, 1), "ahead": ahead,
                  "seed": seed, "extras": []}
        for name in model.extra_visual_names:
            if name not in out:
                continue
            item = out[name][0].float()
            pictures = util.visual_arrays(name, item, opt)
            entry = {"name": name, "pictures": {k: data_url(png_bytes(v)) for k, v in pictures.items()}}
            if item.dim() == 1:
                entry["values"] = [round(float(v), 6) for v in item]
            result["extras"].append(entry)
        logger.info("generated %dx%d in %.0f ms (%d ahead in the queue)", self.width, self.height, ms, ahead)
        return result
