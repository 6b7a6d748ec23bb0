"""Evaluation metrics: segmentation scores (mIoU / accuracy), FID, KID, LPIPS, FRD."""
from util.metrics.segmentation import (  # noqa: F401
    confusion_matrix,
    scores_from_confusion,
    cityscapes_labelid_to_trainid,
    cityscapes_id_to_trainid_table,
)
