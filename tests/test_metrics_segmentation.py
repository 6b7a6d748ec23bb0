"""Confusion-matrix maths against hand-computed cases; Cityscapes id mapping; the synthetic
segmenter through the same folder-scoring code."""
import numpy as np
import pytest
import torch
from PIL import Image

from util.metrics.segmentation import (cityscapes_labelid_to_trainid, confusion_matrix, per_class_iou,
                                       scores_from_confusion)


def test_confusion_matrix_hand_computed():
    target = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 0, 2]])
    conf = confusion_matrix(pred, target, num_classes=4)
    expected = torch.tensor([[1, 1, 0, 0],    # target 0: once right, once predicted 1
                             [0, 2, 0, 0],    # target 1: both right
                             [1, 0, 0, 0],    # target 2: predicted 0
                             [0, 0, 0, 0]])   # the 255 pixel (predicted 2) is ignored
    assert conf.dtype == torch.int64
    assert torch.equal(conf, expected)
    s = scores_from_confusion(conf)
    # 3 of 5 counted pixels right
    assert s["pixel_accuracy"] == pytest.approx(3 / 5)
    # per-class accuracy 1/2, 2/2, 0/1 over the 3 classes in the target
    assert s["mean_accuracy"] == pytest.approx((0.5 + 1 + 0) / 3)
    # IoU: class0 1/(2+2-1), class1 2/(2+3-2), class2 0/1; class 3 absent everywhere -> excluded
    assert s["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_class_only_predicted_counts_as_zero_iou():
    target = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0, 2, 1, 1])
    s = scores_from_confusion(confusion_matrix(pred, target, 3))
    # IoU0 = 1/2, IoU1 = 1, IoU2 = 0/1 (predicted once, never in the target)
    assert s["mIoU"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert s["mean_accuracy"] == pytest.approx((0.5 + 1) / 2)
    iou = per_class_iou(confusion_matrix(pred, target, 4))
    assert torch.isnan(iou[3]) and iou[2] == 0


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(torch.tensor([7]), torch.tensor([1]), 3)


def test_perfect_prediction_scores_one():
    t = torch.randint(0, 5, (2, 8, 8))
    s = scores_from_confusion(confusion_matrix(t, t, 5))
    assert s == {"pixel_accuracy": 1.0, "mean_accuracy": 1.0, "mIoU": 1.0}


def test_cityscapes_ids_to_train_ids():
    ids = np.array([0, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33, 34, 6, 9, 29, 30])
    train = cityscapes_labelid_to_trainid(ids)
    assert train.tolist() == [255] + list(range(19)) + [255] * 5
    t = cityscapes_labelid_to_trainid(torch.tensor([[26, 255]]))
    assert t.tolist() == [[13, 255]]
    with pytest.raises(ValueError):
        cityscapes_labelid_to_trainid(torch.tensor([300]))


def test_synthetic_segmenter_scores_through_folder_code(tmp_path):
    """The synthetic data's exact segmenter on its own rendered images gives mIoU 1; corrupting one
    region lowers it by the hand-computable amount."""
    from data import synthetic
    from util.metrics.evaluation import segmentation_scores
    label = np.zeros((16, 16), dtype=np.uint8)
    label[:, 8:] = 1
    label[:4, :4] = 2
    image = synthetic.render_image(label)
    (tmp_path / "fake").mkdir()
    (tmp_path / "label").mkdir()
    Image.fromarray(image).save(tmp_path / "fake" / "val_00000.png")
    Image.fromarray(label).save(tmp_path / "label" / "val_00000.png")
    s = segmentation_scores(str(tmp_path / "fake"), str(tmp_path / "label"), "synthetic")
    assert s["mIoU"] == pytest.approx(1.0) and s["pixel_accuracy"] == pytest.approx(1.0)
    assert s["num_images"] == 1
    # paint class 2's square with class 1's colour: 16 pixels of class 2 become class 1
    other = synthetic.render_image(np.ones((16, 16), dtype=np.uint8))
    image[:4, :4] = other[:4, :4]
    Image.fromarray(image).save(tmp_path / "fake" / "val_00000.png")
    s = segmentation_scores(str(tmp_path / "fake"), str(tmp_path / "label"), "synthetic")
    # class0: 112 px, IoU 1; class1: 128 px + 16 wrong -> IoU 128/144; class2: IoU 0
    assert s["pixel_accuracy"] == pytest.approx(240 / 256)
    assert s["mIoU"] == pytest.approx((1 + 128 / 144 + 0) / 3)


def test_missing_label_is_named(tmp_path):
    from util.metrics.evaluation import segmentation_scores
    (tmp_path / "fake").mkdir()
    (tmp_path / "label").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "fake" / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "label" / "b.png")
    with pytest.raises(ValueError, match="a"):
        segmentation_scores(str(tmp_path / "fake"), str(tmp_path / "label"), "synthetic")
