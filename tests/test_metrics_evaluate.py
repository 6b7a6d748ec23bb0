"""evaluate.py end to end: stem pairing, JSON output, segmentation through the CLI, error messages."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
from util.metrics.fid import INCEPTION_WEIGHTS_FILE, build_fid_inception_structure
from util.metrics.images import pair_by_stem

@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(folder, names, seed, low=0, high=256, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for n in names:
        Image.fromarray(rng.randint(low, high, (size, size, 3)).astype(np.uint8)).save(folder / f"{n}.png")
    return folder


def test_pair_by_stem_lists_unmatched():
    with pytest.raises(ValueError) as err:
        pair_by_stem(["r/a.png", "r/b.jpg", "r/c.png"], ["f/a.png", "f/c.png", "f/d.png"], "r", "f")
    msg = str(err.value)
    assert "Only in r: b" in msg and "Only in f: d" in msg
    pairs = pair_by_stem(["r/b.jpg", "r/a.png"], ["f/a.png", "f/b.png"])
    assert pairs == [("r/a.png", "f/a.png"), ("r/b.jpg", "f/b.png")]  # jpg pairs with png by stem


def test_cli_fid_kid_json(tmp_path, tmp_torch_home):
    torch.manual_seed(0)
    torch.save(build_fid_inception_structure().state_dict(),
               tmp_torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE)
    names = ["x1", "x2", "x3", "x4"]
    real = _images(tmp_path / "real", names, 0, high=100)
    fake = _images(tmp_path / "fake", names, 1, low=150)
    out = tmp_path / "res" / "m.json"
    res = evaluate.main(["--real", str(real), "--fake", str(fake), "--metrics", "fid,kid", "--fid_dims", "192",
                         "--device", "cpu", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["num_images"] == 4
    assert saved["fid"] == pytest.approx(res["fid"]) and saved["fid"] > 0
    assert "kid" in saved and "kid_std" in saved


def test_cli_segmentation_synthetic(tmp_path):
    from data import synthetic
    label = np.zeros((8, 8), np.uint8)
    label[4:] = 1
    (tmp_path / "labels").mkdir()
    Image.fromarray(label).save(tmp_path / "labels" / "val_00000.png")
    (tmp_path / "fake").mkdir()
    Image.fromarray(synthetic.render_image(label)).save(tmp_path / "fake" / "val_00000.png")
    res = evaluate.main(["--fake", str(tmp_path / "fake"), "--seg_model", "synthetic",
                         "--label_dir", str(tmp_path / "labels")])
    assert res["segmentation"]["mIoU"] == pytest.approx(1.0)


def test_cli_errors_are_one_line_messages(tmp_path, tmp_torch_home, capsys):
    real = _images(tmp_path / "real", ["a", "b"], 0)
    fake = _images(tmp_path / "fake", ["a"], 1)
    assert evaluate.cli(["--real", str(real), "--fake", str(fake), "--metrics", "lpips"]) == 2  # LPIPS pairs by stem
    (line,) = capsys.readouterr().err.splitlines()
    assert re.match(r"evaluate\.py: error: .*Only in .*real.*: b", line)
    fake = _images(tmp_path / "fake", ["b"], 1)
    assert evaluate.cli(["--real", str(real), "--fake", str(fake), "--metrics", "fid", "--device", "cpu"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("evaluate.py: error: ") and INCEPTION_WEIGHTS_FILE in line
    assert evaluate.cli(["--fake", str(fake)]) == 2
    assert capsys.readouterr().err == "evaluate.py: error: nothing to do: give --metrics and/or --seg_model\n"
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_FILE):  # --verbose: the traceback
        evaluate.cli(["--real", str(real), "--fake", str(fake), "--metrics", "fid", "--device", "cpu", "--verbose"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.main(["--real", str(real), "--fake", str(fake), "--metrics", "fid,is"])


def test_fid_and_kid_compare_sets_with_any_names_and_counts(tmp_path, random_inception):
    """Like pytorch-fid: FID/KID need no matching file stems and no equal counts; LPIPS/FRD still
    pair by stem."""
    from util.metrics import fid as fidm
    from util.metrics.evaluation import evaluate_folders
    from util.metrics.images import list_images

    real = _images(tmp_path / "real", [f"frankfurt_{i}" for i in range(5)], 0, high=120)
    fake = _images(tmp_path / "fake", [f"sample{i:02d}" for i in range(3)], 1, low=100)
    res = evaluate_folders(str(real), str(fake), ["fid", "kid"], fid_dims=192, kid_subsets=5)
    assert (res["num_images"], res["num_real"]) == (3, 5)
    model = fidm.load_fid_inception(None, dims=192)
    act_real = fidm.activations_from_files(list_images(str(real)), model)
    act_fake = fidm.activations_from_files(list_images(str(fake)), model)
    assert res["fid"] == pytest.approx(fidm.fid_from_activations(act_real, act_fake), rel=1e-6)
    assert res["fid"] > 0
    assert res["kid"] == pytest.approx(fidm.kid_from_activations(act_real, act_fake, num_subsets=5)[0], rel=1e-6)
    with pytest.raises(ValueError, match="do not match by file stem"):
        evaluate_folders(str(real), str(fake), ["fid", "lpips"], fid_dims=192)
