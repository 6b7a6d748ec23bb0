"""FID / KID against pytorch-fid's own computation and a direct MMD formula."""
import numpy as np
import pytest
import torch
from PIL import Image

from util.metrics import fid as fidmod
from util.metrics.fid import (INCEPTION_WEIGHTS_FILE, activations_from_files, fid_from_activations, kid_from_activations, load_fid_inception)
from util.metrics.images import list_images


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared 2-core machine two OpenMP threads spin against other
    processes and make these CPU-heavy networks many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_images(folder, n, seed, size=(40, 32), low=0, high=256):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        arr = rng.randint(low, high, size=(size[1], size[0], 3)).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img_{i:02d}.png")
    return folder


def _pytorch_fid_model(monkeypatch, path, dims):
    from pytorch_fid import inception as pfi
    # pytorch-fid downloads its weights; hand it our file instead (no network in tests).
    monkeypatch.setattr(pfi, "load_state_dict_from_url",
                        lambda *a, **k: torch.load(path, map_location="cpu", weights_only=True))
    return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()


def test_fid_equals_pytorch_fid(tmp_path, random_inception, monkeypatch):
    """Full FID path (files -> features -> statistics -> distance) against
    pytorch_fid.fid_score.calculate_fid_given_paths with the same weights; dims=192 keeps the
    matrix square root small, the 2048-d features are compared in the next test."""
    from pytorch_fid import fid_score
    real = _write_images(tmp_path / "real", 4, seed=1, high=100)
    fake = _write_images(tmp_path / "fake", 4, seed=2, low=150)
    _pytorch_fid_model(monkeypatch, random_inception, 192)  # installs the patch
    theirs = fid_score.calculate_fid_given_paths([str(real), str(fake)], batch_size=4, device="cpu",
                                                 dims=192, num_workers=0)
    model = load_fid_inception(dims=192)  # found in the temp hub cache
    ours = fid_from_activations(activations_from_files(list_images(real), model, batch_size=5),
                                activations_from_files(list_images(fake), model, batch_size=5))
    assert theirs > 1e-3  # different images give a positive distance
    assert abs(ours - theirs) < 1e-3, (ours, theirs)


def test_2048_features_equal_pytorch_fid(tmp_path, random_inception, monkeypatch):
    from pytorch_fid import fid_score
    real = _write_images(tmp_path / "real", 3, seed=3, size=(64, 48))
    files = list_images(real)
    theirs_model = _pytorch_fid_model(monkeypatch, random_inception, 2048)
    theirs = fid_score.get_activations(files, theirs_model, batch_size=3, dims=2048, device="cpu",
                                       num_workers=0)
    ours = activations_from_files(files, load_fid_inception(str(random_inception)), batch_size=3)
    assert ours.shape == (3, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_fid_of_identical_sets_is_zero():
    act = np.random.RandomState(0).randn(20, 8)
    assert abs(fid_from_activations(act, act)) < 1e-6
    assert fid_from_activations(act, act + 1.0) == pytest.approx(8.0, abs=1e-6)  # ||mu1-mu2||^2


def test_missing_inception_weights_names_file(tmp_torch_home):
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_FILE):
        load_fid_inception()
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_fid_inception("nope.pth")


def _direct_mmd2(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


def test_kid_matches_direct_formula():
    rng = np.random.RandomState(0)
    x = rng.randn(7, 5)
    y = rng.randn(7, 5) + 0.5
    mean, std = kid_from_activations(x, y)
    assert mean == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    assert std == 0.0
    # Unequal sizes: subset size adapts to the smaller set (5); each subset is a direct MMD.
    x2 = rng.randn(9, 5)
    mean2, _ = kid_from_activations(x2, y[:5], num_subsets=3, seed=1)
    rs = np.random.RandomState(1)
    expect = []
    for _ in range(3):
        xi = x2[rs.choice(9, 5, replace=False)]
        yi = y[:5][rs.choice(5, 5, replace=False)]
        expect.append(_direct_mmd2(xi, yi))
    assert mean2 == pytest.approx(np.mean(expect), rel=1e-10)


def test_kid_is_near_zero_for_same_distribution():
    rng = np.random.RandomState(0)
    same = kid_from_activations(rng.randn(200, 4), rng.randn(200, 4))[0]
    shifted = kid_from_activations(rng.randn(200, 4), rng.randn(200, 4) + 1)[0]
    assert abs(same) < 0.05 < shifted


def test_training_tensor_path_matches_file_path(tmp_path, random_inception):
    real = _write_images(tmp_path / "real", 2, seed=4, size=(32, 32))
    files = list_images(real)
    model = load_fid_inception(dims=64)
    from_files = activations_from_files(files, model)
    imgs = torch.stack([torch.from_numpy(np.asarray(Image.open(f))).permute(2, 0, 1).float() / 127.5 - 1
                        for f in files])
    from_tensors = fidmod.activations_from_tensors(imgs, model)
    np.testing.assert_allclose(from_tensors, from_files, rtol=1e-5, atol=1e-5)
    acc = fidmod.ActivationAccumulator(model)
    acc.add(imgs[:1])
    acc.add(imgs[1:])
    assert len(acc) == 2
    np.testing.assert_allclose(acc.activations(), from_files, rtol=1e-5, atol=1e-5)
