"""util/html.py: escaping of hostile names, image references, atomic save."""
import os
from html.parser import HTMLParser

import pytest

from util import html as html_mod
from util.html import HTML, path_to_url, url_to_path


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.refs = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href"):
                self.refs.append(value)

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    collector = _Collector()
    with open(path, encoding="utf-8") as f:
        collector.feed(f.read())
    return collector


def test_hostile_names_are_escaped_and_referenced_files_exist(tmp_path):
    web = tmp_path / "web"
    page = HTML(web, "title <script>alert(1)</script>")
    hostile = ['<script>alert("x")<script>', 'a"b\'c&d#e?f', "javascript:alert(1)", "space name"]
    ims = []
    for name in hostile:
        rel = os.path.join("images", "synthesized_image", name + ".png")
        os.makedirs(os.path.dirname(web / rel), exist_ok=True)
        (web / rel).write_bytes(b"png")
        ims.append(rel)
    page.add_header("<script>header</script>")
    page.add_images(ims, hostile, ims, width=64)
    page.add_text("<b>bold?</b>\nsecond line")
    page.add_table([["<td>", 0.123456]], header=["<th>", "value"])
    path = page.save()

    parsed = _parse(path)
    # No markup came from the names: only the tags the page itself writes.
    assert "script" not in parsed.tags and "b" not in parsed.tags and "th" in parsed.tags
    assert set(parsed.tags) <= {"html", "head", "title", "body", "h3", "p", "br", "table", "tr", "td", "th", "a", "img"}
    # The names appear as text, verbatim.
    joined = "".join(parsed.text)
    for name in hostile:
        assert name in joined
    assert "0.1235" in joined
    # Every src/href is a relative URL that resolves to the right existing file, none is a javascript: URL.
    assert len(parsed.refs) == 2 * len(hostile)
    for ref in parsed.refs:
        assert ":" not in ref and "#" not in ref and "?" not in ref
        assert os.path.isfile(url_to_path(ref, str(web))), ref
    resolved = {os.path.basename(url_to_path(r, str(web))) for r in parsed.refs}
    assert resolved == {n + ".png" for n in hostile}


def test_absolute_paths_become_relative(tmp_path):
    url = path_to_url(str(tmp_path / "images" / "x y.png"), str(tmp_path))
    assert url == "images/x%20y.png"


def test_add_images_rejects_mismatched_lengths(tmp_path):
    page = HTML(tmp_path, "t")
    with pytest.raises(ValueError, match="equal lengths"):
        page.add_images(["a.png", "b.png"], ["a"], None)


def test_refresh_meta(tmp_path):
    text = HTML(tmp_path, "t", refresh=7).render()
    assert 'http-equiv="refresh"' in text and 'content="7"' in text
    assert "refresh" not in HTML(tmp_path, "t").render()


def test_save_is_atomic(tmp_path, monkeypatch):
    page = HTML(tmp_path, "first")
    path = page.save()
    with open(path, encoding="utf-8") as f:
        before = f.read()

    def broken_replace(src, dst):
        raise OSError("disk full")

    page.add_text("new content")
    monkeypatch.setattr(html_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        page.save()
    monkeypatch.undo()
    # The old page is intact and no temp file is left behind.
    with open(path, encoding="utf-8") as f:
        assert f.read() == before
    assert sorted(os.listdir(tmp_path)) == ["images", "index.html"]
