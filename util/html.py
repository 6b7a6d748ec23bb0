"""Static HTML result pages (training visuals, test results) built with dominate.

A page lives in ``web_dir`` and refers to its images by paths *relative to web_dir* (for example
``images/synthesized_image/frankfurt_000000_000294_leftImg8bit.png``), so the whole folder can be moved
or served as is. Text goes through dominate, which escapes it; image and link paths are additionally
percent-encoded, so a file called ``<script>.png`` or ``a#b?.png`` is referenced correctly and cannot
inject markup or turn into a ``javascript:`` URL. Pages are written atomically (temp file + rename):
a reader refreshing the training page never sees half a file.
"""
import logging
import os
import urllib.parse

import dominate
import dominate.util
from dominate.tags import a, br, h3, img, meta, p, table, td, th, tr

from util.util import write_text_atomic

logger = logging.getLogger(__name__)


def path_to_url(path, web_dir=None):
    """Turn a file path into a relative URL that is safe inside src/href.

    Absolute paths under ``web_dir`` are made relative to it. Every character other than
    letters, digits, ``/`` and ``_.-~`` is percent-encoded (so ``:`` can never start a URL scheme,
    ``#``/``?`` never start a fragment/query and quotes/brackets never reach the markup).
    """
    path = os.fspath(path)
    if web_dir is not None and os.path.isabs(path):
        path = os.path.relpath(path, web_dir)
    path = path.replace(os.sep, "/")
    return urllib.parse.quote(path, safe="/")


def url_to_path(url, web_dir):
    """Inverse of :func:`path_to_url` for relative URLs: the file a page's src/href points at."""
    return os.path.join(web_dir, *urllib.parse.unquote(url).split("/"))


class HTML:
    """One HTML page in ``web_dir`` (written as ``web_dir/<filename>`` by :meth:`save`).

    Args:
        web_dir: folder of the page; image paths given to the add_* methods are relative to it
            (absolute paths inside it are accepted and made relative).
        title: page title (escaped).
        refresh: if > 0, the page asks the browser to reload every ``refresh`` seconds (training page).
        image_subdir: name of the image folder inside web_dir, created on construction
            (``get_image_dir()`` returns its path).

    Shapes: no tensors; rows of images are lists of equal length (paths, captions, link targets).
    """

    def __init__(self, web_dir, title, refresh=0, image_subdir="images"):
        self.web_dir = os.fspath(web_dir)
        self.title = str(title)
        self.img_dir = os.path.join(self.web_dir, image_subdir)
        os.makedirs(self.img_dir, exist_ok=True)
        self.doc = dominate.document(title=self.title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv="refresh", content=str(int(refresh)))

    def get_image_dir(self):
        """Folder where images of this page are meant to be stored."""
        return self.img_dir

    def _url(self, path):
        return path_to_url(path, self.web_dir)

    def add_header(self, text):
        """A section heading."""
        with self.doc:
            h3(str(text))

    def add_text(self, text):
        """A paragraph of plain text (escaped; newlines become line breaks)."""
        lines = str(text).split("\n")
        with self.doc, p():
            for i, line in enumerate(lines):
                if i:
                    br()
                # dominate escapes str children; add them as text nodes
                dominate.util.text(line)

    def add_images(self, ims, txts, links=None, width=256, pixelated=False):
        """One row of images with captions under them; each image links to ``links[i]``.

        ``ims`` and ``links`` are paths relative to ``web_dir``; ``links`` defaults to ``ims``
        (click to open the full-size file). ``pixelated``: images shown larger than they are are
        scaled by the browser with nearest-neighbour sampling (CSS ``image-rendering: pixelated``):
        label maps and small images keep their pixels sharp instead of being blurred.
        """
        ims = list(ims)
        txts = list(txts)
        links = list(ims if links is None else links)
        if not (len(ims) == len(txts) == len(links)):
            raise ValueError(
                f"add_images: ims, txts and links must have equal lengths, got "
                f"{len(ims)}, {len(txts)}, {len(links)}"
            )
        t = table(border=1, style="table-layout: fixed;")
        self.doc.add(t)
        with t, tr():
            for im, txt, link in zip(ims, txts, links):
                with td(style="word-wrap: break-word;", halign="center", valign="top"), p():
                    with a(href=self._url(link)):
                        style = f"width:{int(width)}px" + (";image-rendering:pixelated" if pixelated else "")
                        img(style=style, src=self._url(im))
                    br()
                    dominate.util.text(str(txt))

    def add_table(self, rows, header=None):
        """A table of text cells: ``rows`` is a list of lists (cells converted with ``str``,
        floats with 4 decimals); ``header`` an optional list of column names."""
        t = table(border=1, style="border-collapse: collapse;")
        self.doc.add(t)
        with t:
            if header is not None:
                with tr():
                    for name in header:
                        th(str(name), style="padding: 2px 6px;")
            for row in rows:
                with tr():
                    for cell in row:
                        text = f"{cell:.4f}" if isinstance(cell, float) else str(cell)
                        td(text, style="padding: 2px 6px;")

    def render(self):
        """The page as a string."""
        return self.doc.render()

    def save(self, filename="index.html"):
        """Write the page to ``web_dir/filename`` atomically; returns the path."""
        path = os.path.join(self.web_dir, filename)
        write_text_atomic(path, self.render())
        logger.debug("wrote %s", path)
        return path
