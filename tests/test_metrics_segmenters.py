"""The papers' segmenters: state-dict keys equal the public code's layouts (key lists derived here
from the public code's structure), forward shapes, loading of files saved in the public layouts, and
the full mIoU path with random weights."""
import numpy as np
import pytest
import torch
from PIL import Image

from util.metrics import segmenters as S

@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on the shared 2-core machine two OpenMP threads spin against other
    processes and make these CPU-heavy networks many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BN = ("weight", "bias", "running_mean", "running_var")


def _bn(prefix):
    return [f"{prefix}.{k}" for k in BN]


def drn_d_105_public_keys():
    """fyu/drn DRNSeg('drn_d_105'): base = DRN-D children layer0..layer8 (Sequential indices 0..8),
    layers [1,1,3,4,23,3,1,1]; layer0: conv7x7+BN; layers 1,2,7,8: conv+BN(+ReLU) lists;
    layers 3..6: Bottlenecks (conv1..3, bn1..3; first block with downsample.0 conv, downsample.1 BN);
    seg: 1x1 conv with bias; up: ConvTranspose without bias."""
    keys = ["base.0.0.weight"] + _bn("base.0.1")
    for i in (1, 2, 7, 8):
        keys += [f"base.{i}.0.weight"] + _bn(f"base.{i}.1")
    for i, n in zip((3, 4, 5, 6), (3, 4, 23, 3)):
        for b in range(n):
            p = f"base.{i}.{b}"
            for j in (1, 2, 3):
                keys += [f"{p}.conv{j}.weight"] + _bn(f"{p}.bn{j}")
            if b == 0:
                keys += [f"{p}.downsample.0.weight"] + _bn(f"{p}.downsample.1")
    return keys + ["seg.weight", "seg.bias", "up.weight"]


def upernet101_public_keys():
    """CSAIL: encoder = Resnet(resnet101): conv1..3/bn1..3 deep stem, layer1..4 [3,4,23,3] bottlenecks;
    decoder = UPerNet(fc_dim 2048, fpn_dim 512): ppm_conv.<0..3>.{0 conv,1 BN}, ppm_last_conv.{0,1},
    fpn_in.<0..2>.{0,1}, fpn_out.<0..2>.0.{0,1}, conv_last.0.{0,1}, conv_last.1 (conv with bias)."""
    enc = []
    for j in (1, 2, 3):
        enc += [f"conv{j}.weight"] + _bn(f"bn{j}")
    for i, n in zip((1, 2, 3, 4), (3, 4, 23, 3)):
        for b in range(n):
            p = f"layer{i}.{b}"
            for j in (1, 2, 3):
                enc += [f"{p}.conv{j}.weight"] + _bn(f"{p}.bn{j}")
            if b == 0:
                enc += [f"{p}.downsample.0.weight"] + _bn(f"{p}.downsample.1")
    dec = []
    for i in range(4):
        dec += [f"ppm_conv.{i}.0.weight"] + _bn(f"ppm_conv.{i}.1")
    dec += ["ppm_last_conv.0.weight"] + _bn("ppm_last_conv.1")
    for i in range(3):
        dec += [f"fpn_in.{i}.0.weight"] + _bn(f"fpn_in.{i}.1")
        dec += [f"fpn_out.{i}.0.0.weight"] + _bn(f"fpn_out.{i}.0.1")
    dec += ["conv_last.0.0.weight"] + _bn("conv_last.0.1") + ["conv_last.1.weight", "conv_last.1.bias"]
    return enc, dec


def deeplabv2_public_keys():
    """kazuto1011/deeplab-pytorch v1: MSC(base=DeepLabV2): base.layer1.conv1.{conv,bn};
    layer2..5 = _ResLayer [3,4,23,3] of block<k> with reduce/conv3x3/increase (+shortcut in block1),
    each {conv, bn}; aspp.c0..c3 (conv with bias)."""
    keys = ["base.layer1.conv1.conv.weight"] + _bn("base.layer1.conv1.bn")
    for li, n in zip((2, 3, 4, 5), (3, 4, 23, 3)):
        for b in range(1, n + 1):
            p = f"base.layer{li}.block{b}"
            for part in ("reduce", "conv3x3", "increase") + (("shortcut",) if b == 1 else ()):
                keys += [f"{p}.{part}.conv.weight"] + _bn(f"{p}.{part}.bn")
    for i in range(4):
        keys += [f"base.aspp.c{i}.weight", f"base.aspp.c{i}.bias"]
    return keys


def _keys(module):
    return {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def drn():
    torch.manual_seed(0)
    return S.DRNSegD105(19).eval()


def test_drn_keys_and_shapes(drn):
    assert _keys(drn) == set(drn_d_105_public_keys())
    sd = drn.state_dict()
    assert sd["base.0.0.weight"].shape == (16, 3, 7, 7)
    assert sd["base.5.0.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd["base.6.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["base.7.0.weight"].shape == (512, 2048, 3, 3)
    assert sd["up.weight"].shape == (19, 1, 16, 16)
    # dilations as in DRN-D: layer5 2, layer6 4 (first blocks too), layer7 2
    assert drn.base[5][0].conv2.dilation == (2, 2) and drn.base[6][0].conv2.dilation == (4, 4)
    assert drn.base[7][0].dilation == (2, 2)


def test_drn_forward_shape():
    net = S.DRNSegD105(19, blocks=(1, 1, 1, 1)).eval()  # shallow copy: same layer types, fast
    with torch.no_grad():
        out = net(torch.randn(2, 3, 16, 24))
    assert out.shape == (2, 19, 16, 24)


def test_drn_up_layer_is_bilinear(drn):
    # a constant map stays constant away from the borders after the x8 transposed conv
    with torch.no_grad():
        y = drn.up(torch.ones(1, 19, 4, 4))
    assert torch.allclose(y[0, :, 8:24, 8:24], torch.ones(19, 16, 16), atol=1e-6)


def test_upernet_keys():
    torch.manual_seed(0)
    net = S.UperNet101(150).eval()
    enc, dec = upernet101_public_keys()
    assert _keys(net.encoder) == set(enc)
    assert _keys(net.decoder) == set(dec)
    sd = net.state_dict()
    assert sd["encoder.conv3.weight"].shape == (128, 64, 3, 3)
    assert sd["decoder.ppm_last_conv.0.weight"].shape == (512, 2048 + 4 * 512, 3, 3)
    assert sd["decoder.conv_last.0.0.weight"].shape == (512, 4 * 512, 3, 3)
    assert sd["decoder.conv_last.1.weight"].shape == (150, 512, 1, 1)


def test_upernet_forward_shape():
    net = S.UperNet101(150, blocks=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 48))
    assert out.shape == (1, 150, 32, 48)


def test_deeplab_keys():
    torch.manual_seed(0)
    net = S.DeepLabV2ResNet101(182).eval()
    assert _keys(net) == set(deeplabv2_public_keys())
    sd = net.state_dict()
    assert sd["base.layer1.conv1.conv.weight"].shape == (64, 3, 7, 7)
    assert sd["base.layer2.block1.reduce.conv.weight"].shape == (64, 64, 1, 1)
    assert sd["base.aspp.c3.weight"].shape == (182, 2048, 3, 3)
    assert net.base.aspp.c3.dilation == (24, 24)
    assert net.base.layer5.block2.conv3x3.conv.dilation == (4, 4)


def test_deeplab_forward_shape_and_msc_max():
    torch.manual_seed(0)
    net = S.DeepLabV2ResNet101(182, blocks=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        out = net(x)
        net.scales = ()
        single = net(x)
    assert out.shape == single.shape == (1, 182, 33, 33)
    # MSC takes the pixel-wise max over scales, so it can only raise the single-scale logits
    assert (out >= single - 1e-5).all() and (out > single + 1e-4).any()


def _public_file(module, path, prefix="", drop_counters=True):
    sd = {prefix + k: v for k, v in module.state_dict().items()
          if not (drop_counters and k.endswith("num_batches_tracked"))}
    torch.save(sd, path)


def test_public_layout_files_load_and_missing_file_is_named(tmp_path, tmp_torch_home, drn):
    # DRN checkpoint as saved through DataParallel, without BN counters (PyTorch 0.3 era)
    f = tmp_path / "drn.pth"
    _public_file(drn, f, prefix="module.")
    seg = S.build_segmenter("drn", str(f))
    assert torch.equal(seg.net.state_dict()["seg.weight"], drn.state_dict()["seg.weight"])
    with pytest.raises(FileNotFoundError, match="drn-d-105_ms_cityscapes.pth"):
        S.build_segmenter("drn")
    with pytest.raises(FileNotFoundError, match="encoder_epoch_50.pth"):
        S.build_segmenter("upernet")
    with pytest.raises(FileNotFoundError, match="deeplabv2_resnet101_msc-cocostuff164k-100000.pth"):
        S.build_segmenter("deeplab")
    # a file of the wrong layout is refused with the key difference
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing"):
        S.build_segmenter("drn", str(tmp_path / "bad.pth"))


def test_full_miou_path_with_random_drn(tmp_path):
    """Cityscapes-style folders -> segmentation_scores with a (shallow, random) DRN -> equals the
    confusion matrix of the network's own predictions on the same inputs."""
    from util.metrics.evaluation import segmentation_scores
    from util.metrics.segmentation import cityscapes_labelid_to_trainid, confusion_matrix, scores_from_confusion
    torch.manual_seed(0)
    seg = S.NetworkSegmenter(S.DRNSegD105(19, blocks=(1, 1, 1, 1)), 19, S.DRN_CITYSCAPES_MEAN,
                             S.DRN_CITYSCAPES_STD).eval()
    rng = np.random.RandomState(0)
    fake_dir = tmp_path / "synthesized_image"
    label_dir = tmp_path / "gtFine" / "val" / "frankfurt"
    fake_dir.mkdir()
    label_dir.mkdir(parents=True)
    conf = torch.zeros(19, 19, dtype=torch.int64)
    for i in range(2):
        base = f"frankfurt_000000_{i:06d}"
        img = rng.randint(0, 256, (16, 32, 3)).astype(np.uint8)
        Image.fromarray(img).save(fake_dir / f"{base}_leftImg8bit.png")
        lab = rng.choice([0, 7, 8, 26, 33], size=(32, 64)).astype(np.uint8)  # full-res label, 2x the image
        Image.fromarray(lab).save(label_dir / f"{base}_gtFine_labelIds.png")
        Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(label_dir / f"{base}_gtFine_color.png")
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
        pred = seg.segment(x)[0]
        # PIL's NEAREST samples pixel centres: halving keeps the odd rows and columns
        target = cityscapes_labelid_to_trainid(lab[1::2, 1::2])
        conf += confusion_matrix(pred, torch.from_numpy(target), 19)
    got = segmentation_scores(str(fake_dir), str(tmp_path / "gtFine"), "drn", segmenter=seg, num_classes=19)
    want = scores_from_confusion(conf)
    assert got["num_images"] == 2
    for k in ("mIoU", "pixel_accuracy", "mean_accuracy"):
        assert got[k] == pytest.approx(want[k])


def test_upernet_and_deeplab_files_load(tmp_path, tmp_torch_home, monkeypatch):
    """Loading logic on shallow copies (same key patterns, fewer blocks, so the test stays fast):
    UperNet from a folder with encoder_epoch_50.pth / decoder_epoch_50.pth and from 'ENC,DEC';
    DeepLab from an MSC file ('base.' keys) and from a bare DeepLabV2 file."""
    import functools
    monkeypatch.setattr(S, "UperNet101", functools.partial(S.UperNet101, blocks=(1, 1, 1, 1)))
    monkeypatch.setattr(S, "DeepLabV2ResNet101", functools.partial(S.DeepLabV2ResNet101, blocks=(1, 1, 1, 1)))
    torch.manual_seed(1)
    up = S.UperNet101(150)
    folder = tmp_torch_home / "hub" / "checkpoints" / "ade20k-resnet101-upernet"
    folder.mkdir()
    _public_file(up.encoder, folder / "encoder_epoch_50.pth")
    _public_file(up.decoder, folder / "decoder_epoch_50.pth")
    seg = S.build_segmenter("upernet")  # default folder in the hub cache
    key = "decoder.conv_last.1.weight"
    assert torch.equal(seg.net.state_dict()[key], up.state_dict()[key])
    seg = S.build_segmenter("upernet", f"{folder / 'encoder_epoch_50.pth'},{folder / 'decoder_epoch_50.pth'}")
    assert torch.equal(seg.net.state_dict()["encoder.conv1.weight"], up.state_dict()["encoder.conv1.weight"])
    assert seg.num_classes == 150

    dl = S.DeepLabV2ResNet101(182)
    _public_file(dl, tmp_path / "msc.pth")
    seg = S.build_segmenter("deeplab", str(tmp_path / "msc.pth"))
    assert torch.equal(seg.net.state_dict()["base.aspp.c0.weight"], dl.state_dict()["base.aspp.c0.weight"])
    torch.save({k[len("base."):]: v for k, v in dl.state_dict().items()}, tmp_path / "bare.pth")
    seg = S.build_segmenter("deeplab", str(tmp_path / "bare.pth"))
    assert torch.equal(seg.net.state_dict()["base.aspp.c0.weight"], dl.state_dict()["base.aspp.c0.weight"])
    # the segmenter normalises like the public code: BGR, 0..255, minus the Caffe mean
    x = torch.zeros(1, 3, 1, 1)  # mid-grey in [-1,1] = 127.5
    assert torch.allclose(seg.normalise(x).flatten(),
                          torch.tensor([127.5 - 104.008, 127.5 - 116.669, 127.5 - 122.675]))


def test_multiscale_testing_reduces_to_single_scale():
    torch.manual_seed(0)
    seg = S.NetworkSegmenter(S.DRNSegD105(19, blocks=(1, 1, 1, 1)), 19, S.IMAGENET_MEAN, S.IMAGENET_STD).eval()
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    single = seg.segment(x)
    seg.test_sizes, seg.size_multiple = (16,), 8  # the input's own size: same prediction
    assert torch.equal(seg.segment(x), single)
    seg.test_sizes = (16, 32)
    assert seg.segment(x).shape == (1, 16, 24)
