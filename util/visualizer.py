"""Training logs and the training web page of ``checkpoints/<name>/``.

- ``loss_log.txt``: one human-readable line per logged iteration (SPADE's format).
- ``loss_log.jsonl``: one JSON object per logged iteration: ``{"kind": "loss", "epoch", "iter"
  (training iterations so far), "epoch_iter", "time", <loss name>: float, ...}`` with the losses
  under the model's names (``model.loss_names``; SPADE's: GAN, GAN_Feat, VGG, KLD, D_Fake, D_real)
  at full float precision;
  evaluation results as ``{"kind": "eval", "epoch", "iter", "split", "pixel_accuracy", ...}``.
- ``web/index.html``: a heading (run name, model, dataset, latest iteration, when the page was
  written), the notes of the run (``log_message`` lines) in a box, the loss curves (inline SVG, no
  plotting library; one chart per training phase; whole iterations on the x axis), evaluation scores
  and their curve, and the visuals of every display step, newest first (``web/images/``), drawn by
  the kind of each tensor (util.util.visual_arrays) at :func:`page_image_width` pixels, small images
  scaled up with sharp pixels.

Only the main process writes (``util.distributed.is_main_process``).
"""
import html as html_lib
import json
import logging
import math
import os
import re
import time

import dominate.util
from dominate.tags import div, h1, p

from util import html as html_page
from util import util as image_util
from util.distributed import is_main_process
from util.metrics.segmentation import format_scores

logger = logging.getLogger(__name__)

_IMAGE_NAME = re.compile(r'^epoch(\d+)_iter(\d+)_(\w+?)(?:_(\d+))?\.png$')
# Width of the images on the training page: --display_winsize, at least 256 px (small images are
# scaled up, with sharp pixels) and at most 512 px (several visuals side by side).
PAGE_IMAGE_WIDTH_RANGE = (256, 512)
_NOTES_STYLE = ('border:1px solid #bbb;background:#f6f6f6;padding:6px 10px;margin:8px 0;'
                'font-family:monospace;white-space:pre-wrap')
_COLOURS = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf')


def _read_jsonl(path):
    records = []
    if not os.path.isfile(path):
        return records
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A run killed while appending leaves at most one broken last line; skip it.
                logger.warning('%s line %d is not valid JSON; ignored', path, line_no)
    return records


class Visualizer:
    """Writes the loss logs and the training page of one run.

    resume_iter: None for a new run (logs are started afresh); for a resumed run the number of
    iterations the checkpoint had done: records and images logged after it (by the interrupted
    run, past its last checkpoint) are dropped so the logs read as one uninterrupted run.
    loss_order: the model's loss names (log and legend order). Losses are passed per phase
    ({phase: {loss name: value}}); visuals as {name: batch tensor} (models/base_model.py).
    """

    def __init__(self, opt, resume_iter=None, loss_order=(), max_samples_shown=2):
        self.opt = opt
        self.loss_order = tuple(loss_order)
        self.loss_groups = {}  # phase -> loss names, as seen in print_current_errors
        self.run_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.txt_path = os.path.join(self.run_dir, 'loss_log.txt')
        self.jsonl_path = os.path.join(self.run_dir, 'loss_log.jsonl')
        self.web_dir = os.path.join(self.run_dir, 'web')
        self.img_dir = os.path.join(self.web_dir, 'images')
        self.use_html = not opt.no_html
        self.max_samples_shown = max_samples_shown
        self.visual_order = []
        self.records = []
        self.notes = []
        self.latest = None  # (epoch, iteration) of the latest logged or displayed step
        if not is_main_process():
            return
        os.makedirs(self.run_dir, exist_ok=True)
        if resume_iter is None:
            for path in (self.txt_path, self.jsonl_path):
                if os.path.exists(path):
                    os.remove(path)
        else:
            self._truncate_after(resume_iter)
        with open(self.txt_path, 'a', encoding='utf-8') as f:
            f.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')
        if self.use_html:
            os.makedirs(self.img_dir, exist_ok=True)

    def _truncate_after(self, resume_iter):
        self.records = [r for r in _read_jsonl(self.jsonl_path) if int(r.get('iter', 0)) <= resume_iter]
        for r in self.records:
            self._saw(r.get('epoch', 0), r.get('iter', 0))
        image_util.write_text_atomic(self.jsonl_path, ''.join(json.dumps(r) + '\n' for r in self.records))
        if os.path.isdir(self.img_dir):
            for fname in os.listdir(self.img_dir):
                m = _IMAGE_NAME.match(fname)
                if m and int(m.group(2)) > resume_iter:
                    os.remove(os.path.join(self.img_dir, fname))

    # ------------------------------------------------------------------------------------------
    def _saw(self, epoch, total_iters):
        step = (int(epoch), int(total_iters))
        if self.latest is None or step[1] >= self.latest[1]:
            self.latest = step

    def _append(self, record, text_line):
        self.records.append(record)
        with open(self.jsonl_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')
        with open(self.txt_path, 'a', encoding='utf-8') as f:
            f.write(text_line + '\n')

    def log_message(self, message):
        """A free-text line in loss_log.txt and on the page (e.g. 'fine-tuning from ...')."""
        logger.info('%s', message)
        if not is_main_process():
            return
        self.notes.append(message)
        with open(self.txt_path, 'a', encoding='utf-8') as f:
            f.write(message + '\n')

    def _loss_sort_key(self, name):
        order = self.loss_order
        return (order.index(name) if name in order else len(order), name)

    def print_current_errors(self, epoch, epoch_iter, total_iters, losses_by_phase, t_iter):
        """Log one iteration's losses ({phase: {name: scalar tensor or float}}); t_iter = s/iteration."""
        for phase, losses in losses_by_phase.items():
            self.loss_groups[phase] = sorted(losses, key=self._loss_sort_key)
        flat = {k: v for losses in losses_by_phase.values() for k, v in losses.items()}
        values = {k: float(v.item() if hasattr(v, 'item') else v)
                  for k, v in sorted(flat.items(), key=lambda kv: self._loss_sort_key(kv[0]))}
        line = f'(epoch: {epoch}, iters: {total_iters}, time: {t_iter:.3f}) ' + ' '.join(
            f'{k}: {v:.3f}' for k, v in values.items())
        logger.debug('%s', line)
        if not is_main_process():
            return
        self._saw(epoch, total_iters)
        record = {'kind': 'loss', 'epoch': int(epoch), 'iter': int(total_iters),
                  'epoch_iter': int(epoch_iter), 'time': float(t_iter), **values}
        self._append(record, line)

    def log_evaluation(self, epoch, total_iters, scores, split='val', what='layout'):
        """Log evaluation scores ({name: float}, e.g. pixel_accuracy, mIoU) and refresh the page."""
        values = {k: float(v) for k, v in scores.items()}
        line = f'(epoch: {epoch}, iters: {total_iters}) {what} score on {split}: {format_scores(values)}'
        logger.info('%s', line)
        if not is_main_process():
            return
        self._saw(epoch, total_iters)
        record = {'kind': 'eval', 'epoch': int(epoch), 'iter': int(total_iters), 'split': split,
                  'what': what, **values}
        self._append(record, line)
        if self.use_html:
            self.save_page()

    # ------------------------------------------------------------------------------------------
    def visuals_to_images(self, visuals):
        """{name: batch tensor} -> list (one per shown sample) of [(name, uint8 array)], in the
        model's order of the visuals."""
        rows = []
        batch = min(len(next(iter(visuals.values()))), self.max_samples_shown)
        for b in range(batch):
            row = []
            for name, t in visuals.items():
                row.extend(image_util.visual_arrays(name, t[b], self.opt).items())
            rows.append(row)
        self.visual_order = [name for name, _ in rows[0]] if rows else self.visual_order
        return rows

    def display_current_results(self, visuals, epoch, total_iters):
        """Save this display step's images and rewrite web/index.html."""
        if not (is_main_process() and self.use_html):
            return
        self._saw(epoch, total_iters)
        for b, row in enumerate(self.visuals_to_images(visuals)):
            for name, arr in row:
                fname = f'epoch{epoch:03d}_iter{total_iters:08d}_{name}_{b}.png'
                image_util.save_image(arr, os.path.join(self.img_dir, fname))
        self.save_page()

    # ------------------------------------------------------------------------------------------
    def _display_steps(self):
        """{(epoch, iter): {sample: {visual name: file name}}} of the images on disk."""
        steps = {}
        if not os.path.isdir(self.img_dir):
            return steps
        for fname in os.listdir(self.img_dir):
            m = _IMAGE_NAME.match(fname)
            if not m:
                continue
            key = (int(m.group(1)), int(m.group(2)))
            sample = int(m.group(4) or 0)
            steps.setdefault(key, {}).setdefault(sample, {})[m.group(3)] = fname
        return steps

    def save_page(self):
        if not (is_main_process() and self.use_html):
            return None
        page = html_page.HTML(self.web_dir, f'Experiment name = {self.opt.name}', refresh=0)
        self._add_heading(page)
        if self.notes:
            page.doc.add(div([div(note) for note in self.notes], cls='notes', style=_NOTES_STYLE))
        loss_records = [r for r in self.records if r.get('kind', 'loss') == 'loss']
        eval_records = [r for r in self.records if r.get('kind') == 'eval']
        if loss_records:
            page.add_header('Loss curves')
            names = sorted({k for r in loss_records for k in r
                            if k not in ('kind', 'epoch', 'iter', 'epoch_iter', 'time')}, key=self._loss_sort_key)
            grouped = [n for group in self.loss_groups.values() for n in group]
            groups = [(f'{phase} losses', [n for n in group if n in names])
                      for phase, group in self.loss_groups.items()]
            groups.append(('losses', [n for n in names if n not in grouped]))
            for title, group in groups:
                if group:
                    svg = svg_line_plot(loss_records, group, title=title, x_key='iter')
                    page.doc.add(dominate.util.raw(svg))
        if eval_records:
            page.add_header('Evaluation')
            score_names = sorted({k for r in eval_records for k in r
                                  if k not in ('kind', 'epoch', 'iter', 'split', 'what')})
            rows = [[r['epoch'], r['iter'], r.get('split', ''), r.get('what', '')]
                    + [r.get(k, '') for k in score_names] for r in eval_records[::-1]]
            page.add_table(rows, header=['epoch', 'iter', 'split', 'score'] + score_names)
            if len(eval_records) > 1:
                # FID lives on its own scale; the accuracies and mIoU are fractions in [0,1].
                separate = [n for n in score_names if n in ('fid', 'kid')]
                groups = [[n] for n in separate] + [[n for n in score_names if n not in separate]]
                for group in groups:
                    if group:
                        page.doc.add(dominate.util.raw(svg_line_plot(
                            eval_records, group, title='evaluation: ' + ', '.join(group), x_key='iter')))
        steps = self._display_steps()
        for (epoch, iters) in sorted(steps, reverse=True):
            page.add_header(f'epoch [{epoch}] iteration [{iters}]')
            for sample in sorted(steps[(epoch, iters)]):
                files = steps[(epoch, iters)][sample]
                order = sorted(files, key=lambda n: (self.visual_order.index(n) if n in self.visual_order
                                                     else len(self.visual_order), n))
                ims = ['images/' + files[n] for n in order]
                page.add_images(ims, order, ims, width=page_image_width(self.opt.display_winsize),
                                pixelated=True)
        return page.save('index.html')

    def _add_heading(self, page):
        """The run name, then one line: model, dataset, latest iteration (epoch), time of writing."""
        opt = self.opt
        page.doc.add(h1(opt.name))
        if self.latest is None:
            progress = 'no iteration logged yet'
        else:
            progress = f'iteration {self.latest[1]} (epoch {self.latest[0]})'
        page.doc.add(p(f'model {opt.model}, dataset {opt.dataset_mode}, {progress}; page written '
                       f'{time.strftime("%Y-%m-%d %H:%M:%S")}', cls='run'))


def page_image_width(display_winsize):
    """Width in pixels of the images on the training page (see PAGE_IMAGE_WIDTH_RANGE)."""
    low, high = PAGE_IMAGE_WIDTH_RANGE
    return min(max(int(display_winsize), low), high)


def integer_ticks(lo, hi, max_ticks=6):
    """At most ``max_ticks`` whole numbers in [lo, hi], evenly spaced by a step of 1, 2 or 5 x 10^k
    (the x ticks of iteration axes: no '2.5' iterations)."""
    power = 1
    while True:
        for m in (1, 2, 5):
            step = m * power
            first, last = math.ceil(lo / step) * step, math.floor(hi / step) * step
            if (last - first) // step + 1 <= max_ticks:
                return list(range(first, last + 1, step))
        power *= 10


def svg_line_plot(records, names, title='', x_key='iter', width=640, height=240, max_points=1500):
    """An inline SVG line chart of ``records[i][name]`` against ``records[i][x_key]`` for each name.

    Names and the title are XML-escaped. Long series are subsampled to at most ``max_points``.
    When every x value is a whole number (iterations), the x ticks are whole numbers too
    (:func:`integer_ticks`); otherwise five evenly spaced values. Tick labels are ``<text>`` elements
    of class ``xtick`` / ``ytick``.
    """
    esc = html_lib.escape
    left, right, top, bottom = 60, 140, 24, 30
    pw, ph = width - left - right, height - top - bottom
    series = {}
    for name in names:
        pts = [(float(r[x_key]), float(r[name])) for r in records
               if name in r and isinstance(r[name], (int, float)) and math.isfinite(float(r[name]))]
        if len(pts) > max_points:
            step = len(pts) / max_points
            pts = [pts[int(i * step)] for i in range(max_points)] + [pts[-1]]
        if pts:
            series[name] = pts
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'style="font-family:sans-serif;font-size:11px;background:#fff">',
             f'<text x="{left}" y="15" font-size="13">{esc(title)}</text>']
    if not series:
        parts.append(f'<text x="{left}" y="{top + ph / 2:.0f}">no data</text></svg>')
        return ''.join(parts)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eee"/>')
        parts.append(f'<text class="ytick" x="{left - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    if all(float(x).is_integer() for x in xs):
        x_ticks = [(xv, str(xv)) for xv in integer_ticks(x0, x1)]
    else:
        x_ticks = [(xv, f'{xv:.4g}') for xv in (x0 + (x1 - x0) * i / 4 for i in range(5))]
    for xv, label in x_ticks:
        parts.append(f'<text class="xtick" x="{sx(xv):.1f}" y="{top + ph + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{height - 2}" text-anchor="middle">{esc(x_key)}</text>')
    for k, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        coords = ' '.join(f'{sx(x):.1f},{sy(y):.1f}' for x, y in pts)
        if len(pts) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{coords}"/>')
        else:
            x, y = pts[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        ly = top + 12 + 16 * k
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{left + pw + 34}" y="{ly}">{esc(name)}</text>')
    parts.append('</svg>')
    return ''.join(parts)
