"""data/class_names.py: table lengths, no duplicate names, spot checks against the public sources."""
import pytest

from data import class_names as cn
from util import util

TABLES = {
    "CITYSCAPES_CLASSES": (cn.CITYSCAPES_CLASSES, 35),
    "ADE20K_CLASSES": (cn.ADE20K_CLASSES, 151),
    "COCO_STUFF_CLASSES": (cn.COCO_STUFF_CLASSES, 182),
    "FACADES_CLASSES": (cn.FACADES_CLASSES, 13),
    "DEEPFASHION_CLASSES": (cn.DEEPFASHION_CLASSES, 20),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_length_type_and_no_duplicates(name):
    table, length = TABLES[name]
    assert isinstance(table, tuple) and len(table) == length
    assert all(isinstance(n, str) and n == n.strip() and n for n in table)
    # None of the sources repeats a name within these tables (COCO-Stuff's stuff classes that share a
    # thing's name carry a suffix: 'mirror' / 'mirror-stuff', 'door' / 'door-stuff', 'desk' / 'desk-stuff').
    assert len(set(table)) == len(table)


def test_cityscapes_matches_palette_size():
    assert len(cn.CITYSCAPES_CLASSES) == len(util.cityscapes_palette())


@pytest.mark.parametrize("value, expected", [
    # cityscapesscripts/helpers/labels.py, column ``id``
    (0, "unlabeled"), (1, "ego vehicle"), (7, "road"), (11, "building"), (18, "polegroup"), (23, "sky"),
    (24, "person"), (26, "car"), (33, "bicycle"),
    (34, "license plate"),  # id -1 in labels.py; value 34 in this repo
])
def test_cityscapes_spot_checks(value, expected):
    assert cn.CITYSCAPES_CLASSES[value] == expected


@pytest.mark.parametrize("value, expected", [
    (0, "other objects"),  # CSAILVision/sceneparsing README: "0 refers to 'other objects'"
    # CSAILVision/sceneparsing objectInfo150.txt, column Idx, first name of column Name
    (1, "wall"), (9, "windowpane"), (13, "person"), (45, "chest of drawers"), (57, "pool table"),
    (90, "television"), (142, "crt screen"), (145, "bulletin board"), (150, "flag"),
])
def test_ade20k_spot_checks(value, expected):
    assert cn.ADE20K_CLASSES[value] == expected


@pytest.mark.parametrize("value, expected", [
    # nightrome/cocostuff labels.md, label id = value + 1
    (0, "person"),  # id 1
    (11, "street sign"),  # id 12, removed from COCO
    (29, "eye glasses"),  # id 30, removed from COCO
    (79, "toaster"),  # id 80
    (88, "hair drier"),  # id 89
    (90, "hair brush"),  # id 91, removed from COCO
    (91, "banner"),  # id 92, first stuff class
    (156, "sky-other"),  # id 157
    (181, "wood"),  # id 182
])
def test_coco_stuff_spot_checks(value, expected):
    assert cn.COCO_STUFF_CLASSES[value] == expected


@pytest.mark.parametrize("value, expected", [
    # CMP Facade Database label numbering (1 background ... 12 shop); 0 = no label
    (0, "unlabeled"), (1, "background"), (2, "facade"), (3, "window"), (5, "cornice"), (10, "molding"),
    (12, "shop"),
])
def test_facades_spot_checks(value, expected):
    assert cn.FACADES_CLASSES[value] == expected


@pytest.mark.parametrize("value, expected", [
    # LIP label order, as in the Self-Correction-Human-Parsing README
    (0, "background"), (5, "upper-clothes"), (10, "jumpsuits"), (13, "face"), (19, "right-shoe"),
])
def test_deepfashion_spot_checks(value, expected):
    assert cn.DEEPFASHION_CLASSES[value] == expected
