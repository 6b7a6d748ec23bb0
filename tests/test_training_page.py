"""The training page (util/visualizer.py): heading, notes box, whole-iteration ticks on the loss axes,
images at least 256 px wide with sharp pixels, and something to see after a run shorter than
--print_freq / --display_freq. Checked on the parsed HTML."""
import json
import os
from html.parser import HTMLParser

import train
from conftest import build_options
from test_train import tiny_args
from util.visualizer import Visualizer, integer_ticks, page_image_width, svg_line_plot


class Page(HTMLParser):
    """Text of the h1, of p.run, of div.notes (one entry per inner div), the x tick labels of every
    chart, and the attributes of every img."""

    def __init__(self, text):
        super().__init__()
        self.h1, self.run, self.notes, self.xticks, self.imgs = [], [], [], [], []
        self.svgs = 0
        self._stack = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
            return
        if tag == "svg":
            self.svgs += 1
        cls = attrs.get("class")
        inside_notes = any(c == "notes" for _, c, _ in self._stack)
        kind = {("h1", None): "h1", ("text", "xtick"): "xtick", ("p", "run"): "run"}.get((tag, cls))
        if tag == "div" and inside_notes:
            kind = "note"
            self.notes.append("")
        self._stack.append((tag, cls, kind))

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()

    def handle_data(self, data):
        if not self._stack:
            return
        kind = self._stack[-1][2]
        if kind == "h1":
            self.h1.append(data)
        elif kind == "run":
            self.run.append(data)
        elif kind == "xtick":
            self.xticks.append(data)
        elif kind == "note":
            self.notes[-1] += data


def read_page(run_dir):
    with open(os.path.join(run_dir, "web", "index.html"), encoding="utf-8") as f:
        text = f.read()
    return text, Page(text)


def test_iteration_ticks_are_whole_numbers():
    assert integer_ticks(1, 4) == [1, 2, 3, 4]
    assert integer_ticks(1, 10) == [2, 4, 6, 8, 10]
    assert integer_ticks(1, 600) == [100, 200, 300, 400, 500, 600]
    assert integer_ticks(0, 2) == [0, 1, 2]
    records = [{"iter": i, "GAN": 1.0 / i} for i in (1, 2, 3, 4)]
    ticks = Page(svg_line_plot(records, ["GAN"], x_key="iter")).xticks
    assert ticks == ["1", "2", "3", "4"]  # not 1, 1.75, 2.5, 3.25, 4
    # a single point: whole numbers around it
    assert Page(svg_line_plot(records[:1], ["GAN"], x_key="iter")).xticks == ["0", "1", "2"]
    # x values that are not whole numbers keep five evenly spaced ticks
    fractional = [{"epoch": x, "GAN": 1.0} for x in (0.5, 1.0, 1.5)]
    assert Page(svg_line_plot(fractional, ["GAN"], x_key="epoch")).xticks == ["0.5", "0.75", "1", "1.25", "1.5"]


def test_image_width_on_the_training_page():
    assert [page_image_width(w) for w in (32, 64, 256, 400, 1024)] == [256, 256, 256, 400, 512]


def test_heading_and_notes_are_escaped_text(tmp_path):
    opt = build_options(checkpoints_dir=str(tmp_path), name="a<b>&c", dataset_mode="synthetic",
                        dataroot=str(tmp_path / "data"))
    visualizer = Visualizer(opt)
    visualizer.log_message("<i>fine-tuning</i> & more")
    visualizer.print_current_errors(1, 3, 3, {"generator": {"GAN": 1.5}}, 0.1)
    visualizer.save_page()
    text, page = read_page(os.path.join(str(tmp_path), "a<b>&c"))
    assert "".join(page.h1) == "a<b>&c"
    run_line = "".join(page.run)
    assert run_line.startswith("model pix2pix, dataset synthetic, iteration 3 (epoch 1); page written 2")
    assert page.notes == ["<i>fine-tuning</i> & more"]
    assert "<i>" not in text and "<b>" not in text


def test_a_run_shorter_than_print_and_display_freq_has_losses_and_images(synth_root, tmp_path):
    # 2 iterations; losses every 100, images every 100: only the last iteration shows them
    scores = train.main(tiny_args(synth_root, tmp_path, "short", "--print_freq", "100", "--display_freq", "100"))
    assert scores  # the synthetic run ends with its layout score
    run_dir = str(tmp_path / "short")
    with open(os.path.join(run_dir, "loss_log.jsonl"), encoding="utf-8") as f:
        losses = [r for r in map(json.loads, f) if r["kind"] == "loss"]
    assert [(r["epoch"], r["iter"]) for r in losses] == [(1, 2)]
    text, page = read_page(run_dir)
    assert "".join(page.h1) == "short"
    assert "".join(page.run).startswith("model pix2pix, dataset synthetic, iteration 2 (epoch 1); page written")
    assert page.notes == ["training 1 epoch x 2 iterations (batch 2) on cpu"]
    assert page.svgs == 2 and "no data" not in text
    assert page.xticks[:3] == ["1", "2", "3"]
    # 2 samples x (input_label, synthesized_image, real_image) of iteration 2, shown 256 px wide
    # (the synthetic images are 32 px) with nearest-neighbour scaling
    assert len(page.imgs) == 6
    for img in page.imgs:
        assert "_iter00000002_" in img["src"]
        assert img["style"] == "width:256px;image-rendering:pixelated"
        assert os.path.isfile(os.path.join(run_dir, "web", img["src"]))
