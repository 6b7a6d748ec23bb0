"""Class names of the datasets, for display: each table is indexed by the label value as stored in that
dataset's label files (so ``TABLE[v]`` names the pixels whose value is ``v``).

CelebAMask-HQ's names are ``data.celebamask_hq_dataset.CELEBAMASK_HQ_CLASSES`` and the synthetic dataset's
``data.synthetic.CLASS_NAMES``; they are not repeated here.
"""

# Cityscapes label ids 0..33, as named in cityscapesscripts/helpers/labels.py (the ``id`` column; the same
# ids as the comments of util/util.py's _CITYSCAPES_COLORS). 'license plate' has id -1 in that table; this
# repo gives it value 34 (its 35th colour).
CITYSCAPES_CLASSES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static",  # 0-4
    "dynamic", "ground", "road", "sidewalk", "parking",  # 5-9
    "rail track", "building", "wall", "fence", "guard rail",  # 10-14
    "bridge", "tunnel", "pole", "polegroup", "traffic light",  # 15-19
    "traffic sign", "vegetation", "terrain", "sky", "person",  # 20-24
    "rider", "car", "truck", "bus", "caravan",  # 25-29
    "trailer", "train", "motorcycle", "bicycle", "license plate",  # 30-34
)

# ADE20K SceneParsing (ADEChallengeData2016) annotation values 0..150. Classes 1..150: the first name of
# each entry of objectInfo150.txt in CSAILVision/sceneparsing (e.g. 'television' from "television,
# television receiver, ..."; other lists such as detectron2's and mmsegmentation's put 'television
# receiver' first). Value 0: "other objects" in that repository's README, ignored in evaluation.
ADE20K_CLASSES = (
    "other objects",  # 0
    "wall", "building", "sky", "floor", "tree",  # 1-5
    "ceiling", "road", "bed", "windowpane", "grass",  # 6-10
    "cabinet", "sidewalk", "person", "earth", "door",  # 11-15
    "table", "mountain", "plant", "curtain", "chair",  # 16-20
    "car", "water", "painting", "sofa", "shelf",  # 21-25
    "house", "sea", "mirror", "rug", "field",  # 26-30
    "armchair", "seat", "fence", "desk", "rock",  # 31-35
    "wardrobe", "lamp", "bathtub", "railing", "cushion",  # 36-40
    "base", "box", "column", "signboard", "chest of drawers",  # 41-45
    "counter", "sand", "sink", "skyscraper", "fireplace",  # 46-50
    "refrigerator", "grandstand", "path", "stairs", "runway",  # 51-55
    "case", "pool table", "pillow", "screen door", "stairway",  # 56-60
    "river", "bridge", "bookcase", "blind", "coffee table",  # 61-65
    "toilet", "flower", "book", "hill", "bench",  # 66-70
    "countertop", "stove", "palm", "kitchen island", "computer",  # 71-75
    "swivel chair", "boat", "bar", "arcade machine", "hovel",  # 76-80
    "bus", "towel", "light", "truck", "tower",  # 81-85
    "chandelier", "awning", "streetlight", "booth", "television",  # 86-90
    "airplane", "dirt track", "apparel", "pole", "land",  # 91-95
    "bannister", "escalator", "ottoman", "bottle", "buffet",  # 96-100
    "poster", "stage", "van", "ship", "fountain",  # 101-105
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool",  # 106-110
    "stool", "barrel", "basket", "waterfall", "tent",  # 111-115
    "bag", "minibike", "cradle", "oven", "ball",  # 116-120
    "food", "step", "tank", "trade name", "microwave",  # 121-125
    "pot", "animal", "bicycle", "lake", "dishwasher",  # 126-130
    "screen", "blanket", "sculpture", "hood", "sconce",  # 131-135
    "vase", "traffic light", "tray", "ashcan", "fan",  # 136-140
    "pier", "crt screen", "plate", "monitor", "bulletin board",  # 141-145
    "shower", "radiator", "glass", "clock", "flag",  # 146-150
)

# COCO-Stuff stuffthingmaps PNG values 0..181: value v is COCO-Stuff label id v + 1 as listed in
# nightrome/cocostuff labels.md (ids 1-91 things, including the 11 ids removed from COCO's 80 detection
# classes: street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush;
# ids 92-182 stuff). Label id 0 'unlabeled' is stored as value 255 and is not in this table.
COCO_STUFF_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane",  # 0-4
    "bus", "train", "truck", "boat", "traffic light",  # 5-9
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench",  # 10-14
    "bird", "cat", "dog", "horse", "sheep",  # 15-19
    "cow", "elephant", "bear", "zebra", "giraffe",  # 20-24
    "hat", "backpack", "umbrella", "shoe", "eye glasses",  # 25-29
    "handbag", "tie", "suitcase", "frisbee", "skis",  # 30-34
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",  # 35-39
    "skateboard", "surfboard", "tennis racket", "bottle", "plate",  # 40-44
    "wine glass", "cup", "fork", "knife", "spoon",  # 45-49
    "bowl", "banana", "apple", "sandwich", "orange",  # 50-54
    "broccoli", "carrot", "hot dog", "pizza", "donut",  # 55-59
    "cake", "chair", "couch", "potted plant", "bed",  # 60-64
    "mirror", "dining table", "window", "desk", "toilet",  # 65-69
    "door", "tv", "laptop", "mouse", "remote",  # 70-74
    "keyboard", "cell phone", "microwave", "oven", "toaster",  # 75-79
    "sink", "refrigerator", "blender", "book", "clock",  # 80-84
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",  # 85-89
    "hair brush", "banner", "blanket", "branch", "bridge",  # 90-94
    "building-other", "bush", "cabinet", "cage", "cardboard",  # 95-99
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes",  # 100-104
    "clouds", "counter", "cupboard", "curtain", "desk-stuff",  # 105-109
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other",  # 110-114
    "floor-stone", "floor-tile", "floor-wood", "flower", "fog",  # 115-119
    "food-other", "fruit", "furniture-other", "grass", "gravel",  # 120-124
    "ground-other", "hill", "house", "leaves", "light",  # 125-129
    "mat", "metal", "mirror-stuff", "moss", "mountain",  # 130-134
    "mud", "napkin", "net", "paper", "pavement",  # 135-139
    "pillow", "plant-other", "plastic", "platform", "playingfield",  # 140-144
    "railing", "railroad", "river", "road", "rock",  # 145-149
    "roof", "rug", "salad", "sand", "sea",  # 150-154
    "shelf", "sky-other", "skyscraper", "snow", "solid-other",  # 155-159
    "stairs", "stone", "straw", "structural-other", "table",  # 160-164
    "tent", "textile-other", "towel", "tree", "vegetable",  # 165-169
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone",  # 170-174
    "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind",  # 175-179
    "window-other", "wood",  # 180-181
)

# CMP Facade Database (Tylecek, CTU-CMP-2012-24, classes facade, molding, cornice, pillar, window, door,
# sill, blind, balcony, shop, deco) label values 1-12 in the database's numbering (1 background, 2 facade,
# 3 window, ..., 12 shop); 0 marks pixels with no label.
FACADES_CLASSES = (
    "unlabeled", "background", "facade", "window", "door", "cornice", "sill",  # 0-6
    "balcony", "blind", "deco", "molding", "pillar", "shop",  # 7-12
)

# Human parsing labels 0..19 in the order of the LIP (Look Into Person) dataset, as listed e.g. in the
# Self-Correction-Human-Parsing README. The DeepFashion maps used by the DAGAN/SelectionGAN line come from a
# LIP-trained human parser, not from DeepFashion's own annotations: these names are for display only.
DEEPFASHION_CLASSES = (
    "background", "hat", "hair", "glove", "sunglasses",  # 0-4
    "upper-clothes", "dress", "coat", "socks", "pants",  # 5-9
    "jumpsuits", "scarf", "skirt", "face", "left-arm",  # 10-14
    "right-arm", "left-leg", "right-leg", "left-shoe", "right-shoe",  # 15-19
)
