"""Layout faithfulness on the synthetic dataset, shared by train.py (periodic and final evaluation)
and test.py: the dataset's exact segmenter labels each generated image and the labels are compared
with the input label map through util.metrics.segmentation (pixel accuracy, mean accuracy, mIoU)."""
import logging

import torch

logger = logging.getLogger(__name__)


class LayoutScorer:
    """Accumulates a confusion matrix of segmented generated images against their input labels.

    update(fake float [B,3,H,W] in [-1,1], label int64 [B,1,H,W]); scores() -> dict of floats in
    [0,1]: pixel_accuracy, mean_accuracy, mIoU.

    The exact scorer of the synthetic dataset (``SyntheticDataset.exact_scorer``): the interface every
    dataset's exact scorer has is ``add(outputs of model.inference, batch, fake_name, kept=None)``,
    ``scores()``, ``kind`` / ``what`` (printed as "<kind> score of the <what> ... images") and
    ``needs_extras`` (whether it reads the inference extras).
    """

    kind, what, needs_extras = "layout", "synthesized", False
    main_metric = "pixel_accuracy"  # higher is better: what keeps the best checkpoint without FID

    def __init__(self, opt):
        from data.synthetic import SyntheticSegmenter
        from util.metrics.segmentation import confusion_matrix, scores_from_confusion

        self.segmenter = SyntheticSegmenter()
        self._confusion_matrix = confusion_matrix
        self._scores = scores_from_confusion
        self.num_classes = opt.label_nc + (1 if opt.contain_dontcare_label else 0)
        self.conf = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, fake, label):
        pred = self.segmenter.segment(fake.detach().float().cpu())
        target = label[:, 0].cpu()
        self.conf += self._confusion_matrix(pred, target, self.num_classes).cpu()

    def add(self, outputs, batch, fake_name, kept=None):
        kept = kept if kept is not None else batch["label"].size(0)
        self.update(outputs[fake_name][:kept], batch["label"][:kept])

    def scores(self):
        return {k: float(v) for k, v in self._scores(self.conf).items()}


def exact_scorer(opt):
    """The exact scorer of ``opt.dataset_mode`` (``BaseDataset.exact_scorer``), or None."""
    import data

    make = data.find_dataset_using_name(opt.dataset_mode).exact_scorer
    return None if make is None else make(opt)


def has_exact_score(opt):
    import data

    return data.find_dataset_using_name(opt.dataset_mode).exact_scorer is not None


def score_model(model, loader, scorer, max_batches=0):
    """Run ``model.inference`` over ``loader``'s batches and feed ``scorer``; returns its scores.

    model: a models.base_model.BaseModel (its networks are used as they are; eval mode is set and
    restored here); the generated image is the second name of ``model.evaluation_pair``.
    max_batches: 0 = every batch.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, data_i in enumerate(loader):
                if max_batches and i >= max_batches:
                    break
                scorer.add(model.inference(data_i, extras=scorer.needs_extras), data_i, model.evaluation_pair[1])
    finally:
        model.train(was_training)
    return scorer.scores()
