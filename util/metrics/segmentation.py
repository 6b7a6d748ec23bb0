"""Segmentation scores: confusion matrix, pixel accuracy, mean class accuracy, mIoU.

The same code scores the papers' segmenters (DRN-D-105, UperNet-101, DeepLab-v2) on generated
images and the synthetic dataset's exact segmenter, so every mIoU this repo reports comes from here.
"""
import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Cityscapes label ids (0..33, plus -1 'license plate' which never appears in labelIds.png) -> the 19
# train ids used for evaluation. Everything not listed is 255 (ignored). Facts from the Cityscapes
# scripts' label table (cityscapesscripts/helpers/labels.py).
_CITYSCAPES_ID_TO_TRAINID = {
    7: 0,    # road
    8: 1,    # sidewalk
    11: 2,   # building
    12: 3,   # wall
    13: 4,   # fence
    17: 5,   # pole
    19: 6,   # traffic light
    20: 7,   # traffic sign
    21: 8,   # vegetation
    22: 9,   # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}

CITYSCAPES_NUM_TRAIN_CLASSES = 19


def cityscapes_id_to_trainid_table(ignore_index=255):
    """Lookup table: int64 tensor [256]; table[label_id] is the train id (0..18) or ``ignore_index``.

    256 entries so that any uint8 label image can be indexed directly (ids 34..255 are ignored).
    """
    table = torch.full((256,), ignore_index, dtype=torch.int64)
    for label_id, train_id in _CITYSCAPES_ID_TO_TRAINID.items():
        table[label_id] = train_id
    return table


def cityscapes_labelid_to_trainid(label, ignore_index=255):
    """Map Cityscapes label ids (any integer tensor / ndarray, values 0..255) to train ids.

    Returns the same kind (tensor -> int64 tensor, ndarray -> int64 ndarray) and shape.
    Raises ValueError on values outside 0..255 (those cannot come from a labelIds PNG).
    """
    is_numpy = isinstance(label, np.ndarray)
    t = torch.from_numpy(np.asarray(label)) if is_numpy else label
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
        raise ValueError(
            f"Cityscapes label ids must lie in 0..255, got range [{int(t.min())}, {int(t.max())}]")
    out = cityscapes_id_to_trainid_table(ignore_index).to(t.device)[t]
    return out.numpy() if is_numpy else out


def confusion_matrix(pred, target, num_classes, ignore_index=255):
    """Confusion matrix of a prediction against a target label map.

    pred, target: integer tensors (or ndarrays) of the same shape, e.g. [B,H,W].
    Returns an int64 tensor [num_classes, num_classes]: rows = target class, columns = predicted
    class. Target pixels equal to ``ignore_index`` are skipped. Any other target value outside
    [0, num_classes), or a prediction outside it, raises ValueError (silently dropping them would
    bias the score).
    """
    pred = torch.as_tensor(pred).long().reshape(-1)
    target = torch.as_tensor(target).long().reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred has {pred.numel()} pixels but target has {target.numel()}")
    valid = target != ignore_index
    pred = pred[valid]
    target = target[valid]
    if target.numel() == 0:
        return torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for name, t in (("target", target), ("pred", pred)):
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} contains class ids in [{lo}, {hi}] outside [0, {num_classes}) "
                f"(ignore_index={ignore_index})")
    flat = target * num_classes + pred
    counts = torch.bincount(flat.cpu(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).to(torch.int64)


def scores_from_confusion(conf):
    """Pixel accuracy, mean class accuracy and mIoU from a confusion matrix [K,K] (rows = target).

    Returns a dict of Python floats in [0, 1]: 'pixel_accuracy', 'mean_accuracy', 'mIoU'.
    Classes absent from both target and prediction (empty row and column) are left out of the
    means, so a small test set is not penalised for classes it never contains. Mean accuracy
    averages over classes present in the target (a class only predicted has no accuracy defined);
    mIoU averages over classes present in target or prediction (such a class has IoU 0).
    """
    conf = torch.as_tensor(conf).to(torch.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion matrix must be square [K,K], got shape {tuple(conf.shape)}")
    tp = conf.diag()
    gt = conf.sum(1)
    predicted = conf.sum(0)
    total = conf.sum()
    union = gt + predicted - tp
    pixel_accuracy = float(tp.sum() / total) if total > 0 else float("nan")
    in_target = gt > 0
    mean_accuracy = float((tp[in_target] / gt[in_target]).mean()) if in_target.any() else float("nan")
    present = union > 0
    miou = float((tp[present] / union[present]).mean()) if present.any() else float("nan")
    return {"pixel_accuracy": pixel_accuracy, "mean_accuracy": mean_accuracy, "mIoU": miou}


def per_class_iou(conf):
    """IoU per class as a float64 tensor [K]; NaN for classes absent from target and prediction."""
    conf = torch.as_tensor(conf).to(torch.float64)
    tp = conf.diag()
    union = conf.sum(1) + conf.sum(0) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


SCORE_LABELS = {"pixel_accuracy": "pixel accuracy", "mIoU": "mIoU", "mean_accuracy": "mean class accuracy",
                "fid": "FID", "kid": "KID", "lpips": "LPIPS", "frd": "FRD"}


def format_scores(scores):
    """The one way scores are printed (train.py, test.py, evaluate.py, the training log):
    'pixel accuracy 0.9354, mIoU 0.8565, mean class accuracy 0.9012' -- fractions, 4 decimals,
    the layout scores first in that order, then any others under their readable names."""
    order = [k for k in ("pixel_accuracy", "mIoU", "mean_accuracy") if k in scores]
    order += [k for k in scores if k not in order]
    return ", ".join(f"{SCORE_LABELS.get(k, k)} {float(scores[k]):.4f}" for k in order)
