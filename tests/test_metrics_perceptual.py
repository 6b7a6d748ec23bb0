"""LPIPS from local files equals the lpips package's own model with the same weights; FRD's
discrete Fréchet distance against the textbook recursion; missing weight files are named."""
import functools

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from util.metrics import perceptual as P
from util.metrics.images import pair_by_stem, list_images


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared 2-core machine two OpenMP threads spin against other
    processes and make these CPU-heavy networks many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(folder, n, seed, size=(24, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3)).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_lpips_equals_lpips_package(tmp_path, tmp_torch_home, monkeypatch):
    import lpips
    from lpips import pretrained_networks as pn
    torch.manual_seed(0)
    alex = torchvision.models.alexnet()
    torch.save(alex.state_dict(), tmp_torch_home / "hub" / "checkpoints" / P.LPIPS_BACKBONE_FILES["alex"])
    ours = P.load_lpips("alex")
    # lpips' own construction, handed the same AlexNet instead of downloading one
    monkeypatch.setattr(pn.tv, "alexnet", lambda *a, **k: alex)
    theirs = lpips.LPIPS(net="alex", verbose=False).eval()
    real = _images(tmp_path / "real", 2, 0, size=(64, 48))
    fake = _images(tmp_path / "fake", 2, 1, size=(64, 48))
    pairs = pair_by_stem(list_images(real), list_images(fake))
    got = P.lpips_pairs(pairs, ours)
    x = torch.stack([P.load_pair01(r, f)[0] for r, f in pairs]) * 2 - 1
    y = torch.stack([P.load_pair01(r, f)[1] for r, f in pairs]) * 2 - 1
    with torch.no_grad():
        want = float(theirs(x, y).mean())
    assert want > 0
    assert got == pytest.approx(want, rel=1e-5)
    assert P.lpips_pairs(pair_by_stem(list_images(real), list_images(real)), ours) == pytest.approx(0, abs=1e-6)


def test_lpips_missing_backbone_is_named(tmp_torch_home):
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        P.load_lpips("vgg")


def _frechet_reference(p, q):
    @functools.lru_cache(maxsize=None)
    def c(i, j):
        d = abs(p[i] - q[j])
        if i == 0 and j == 0:
            return d
        if i == 0:
            return max(c(0, j - 1), d)
        if j == 0:
            return max(c(i - 1, 0), d)
        return max(min(c(i - 1, j), c(i - 1, j - 1), c(i, j - 1)), d)
    return c(len(p) - 1, len(q) - 1)


def test_discrete_frechet_matches_recursion():
    rng = np.random.RandomState(0)
    for n, m in ((1, 1), (5, 5), (7, 4), (30, 30)):
        p, q = rng.randn(n), rng.randn(m)
        assert P.discrete_frechet_distance(p, q) == pytest.approx(_frechet_reference(tuple(p), tuple(q)))
    # hand case: identical curves -> 0; a constant offset -> the offset
    assert P.discrete_frechet_distance([0, 1, 2], [0, 1, 2]) == 0
    assert P.discrete_frechet_distance([0, 1, 2], [3, 4, 5]) == 3


def test_frd_pairs_with_random_resnet(tmp_path, tmp_torch_home):
    torch.manual_seed(0)
    net = torchvision.models.resnet50()
    torch.save(net.state_dict(), tmp_torch_home / "hub" / "checkpoints" / P.RESNET50_FILE)
    model = P.load_resnet50()
    real = _images(tmp_path / "real", 1, 0, size=(32, 32))
    fake = _images(tmp_path / "fake", 1, 1, size=(32, 32))
    pairs = pair_by_stem(list_images(real), list_images(fake))
    # (frd_pairs = frd_from_outputs(*resnet_outputs(...)); ResNet-50 runs are slow on CPU, so once)
    a, b = P.resnet_outputs(pairs, model)
    assert a.shape == b.shape == (1, 1000)
    with torch.no_grad():
        direct = model(P._resnet_input(P.load_pair01(*pairs[0])[1][None])).double().numpy()
    np.testing.assert_allclose(b, direct, rtol=1e-5, atol=1e-6)
    frd = P.frd_from_outputs(a, b)
    assert frd == pytest.approx(P.discrete_frechet_distance(a[0], b[0]), rel=1e-6)
    assert P.frd_from_outputs(a, b, "l2") == pytest.approx(np.linalg.norm(a[0] - b[0]))
    # the index-by-index coupling bounds the Fréchet distance; the end points bound it below
    d = np.abs(a[0] - b[0])
    assert max(d[0], d[-1]) <= frd <= d.max()
    assert P.frd_from_outputs(a, a) == 0
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        P.load_resnet50(str(tmp_path / "missing.pth"))
