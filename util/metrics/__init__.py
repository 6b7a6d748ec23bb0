"""Evaluation metrics: segmentation scores (mIoU / accuracy), FID, KID, LPIPS, FRD.

Entry points: ``evaluate_folders`` (FID/KID/LPIPS/FRD between two image folders) and
``segmentation_scores`` (mIoU / accuracy of generated images under a segmenter); the maths in
``util.metrics.segmentation`` (confusion matrix) and ``util.metrics.fid`` (FID/KID on features).
"""
from util.metrics.segmentation import (  # noqa: F401
    cityscapes_id_to_trainid_table,
    cityscapes_labelid_to_trainid,
    confusion_matrix,
    scores_from_confusion,
)
from util.metrics.evaluation import evaluate_folders, segmentation_scores  # noqa: F401
