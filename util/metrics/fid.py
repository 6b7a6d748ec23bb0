"""FID and KID on Inception-v3 pool features, with pytorch-fid's conventions.

Protocol (identical to pytorch-fid 0.3): the TF-Inception weights ``pt_inception-2015-12-05-6726825d.pth``
in torchvision's Inception-v3 structure with pytorch-fid's patched blocks; RGB image read as uint8,
divided by 255, resized bilinearly (align_corners=False) to 299x299, scaled to [-1,1]; the 2048-d output
of the final average pool; mean and covariance (np.cov, N-1) in float64; pytorch-fid's
``calculate_frechet_distance``. Our model is built without network access: pytorch-fid's own
``InceptionV3`` would download the weights, so the structure is assembled here and filled from a local file.
"""
import logging

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from util.metrics.images import batches, load_image01
from util.metrics.weights import load_into, load_state_dict_file, resolve_weights

logger = logging.getLogger(__name__)

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
# Feature size -> index of the last Inception block that is needed (pytorch-fid's BLOCK_INDEX_BY_DIM).
BLOCK_INDEX_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}


def build_fid_inception_structure():
    """The TF-FID Inception-v3 (1008 classes, no aux head) with random weights; keys match the
    weight file ``pt_inception-2015-12-05-6726825d.pth`` exactly."""
    from pytorch_fid import inception as pfi  # the patched blocks are part of the protocol
    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


class FIDInceptionFeatures(nn.Module):
    """Inception features for FID/KID.

    Input: float [B,3,H,W] in [0,1] (any H,W; resized to 299x299 inside).
    Output: float [B,dims] (dims 2048 = final average pool; 64/192/768 = earlier blocks, spatially
    averaged, as pytorch-fid's --dims).
    """

    def __init__(self, inception, dims=2048):
        super().__init__()
        if dims not in BLOCK_INDEX_BY_DIM:
            raise ValueError(f"dims must be one of {sorted(BLOCK_INDEX_BY_DIM)}, got {dims}")
        self.dims = dims
        last = BLOCK_INDEX_BY_DIM[dims]
        stages = [
            [inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3,
             nn.MaxPool2d(kernel_size=3, stride=2)],
            [inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
            [inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a,
             inception.Mixed_6b, inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e],
            [inception.Mixed_7a, inception.Mixed_7b, inception.Mixed_7c, nn.AdaptiveAvgPool2d(1)],
        ]
        self.blocks = nn.Sequential(*[nn.Sequential(*s) for s in stages[:last + 1]])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.blocks(x)
        # Earlier blocks are spatial maps; pytorch-fid averages them to a vector.
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_fid_inception(weights=None, dims=2048, device="cpu"):
    """FIDInceptionFeatures in eval mode on ``device``, weights from ``weights`` (a path) or the hub
    cache file ``pt_inception-2015-12-05-6726825d.pth``."""
    path = resolve_weights(INCEPTION_WEIGHTS_FILE, weights, "FID Inception", "--inception_weights")
    net = build_fid_inception_structure()
    load_into(net, load_state_dict_file(path, "FID Inception"), path, "FID Inception")
    logger.info("FID Inception weights: %s", path)
    return FIDInceptionFeatures(net, dims).to(device).eval()


@torch.no_grad()
def activations_from_files(files, model, batch_size=50, device="cpu"):
    """Features float64 ndarray [N, dims] for image files (read as pytorch-fid does).

    Each image is resized to 299x299 on its own before batching, so folders with mixed sizes
    work; for equal-size images this is the same computation as pytorch-fid's batched resize.
    """
    device = torch.device(device)
    out = np.empty((len(files), model.dims), dtype=np.float64)
    i = 0
    for chunk in batches(list(files), batch_size):
        imgs = [F.interpolate(load_image01(f)[None], size=(299, 299), mode="bilinear",
                              align_corners=False) for f in chunk]
        feats = model(torch.cat(imgs).to(device))
        out[i:i + len(chunk)] = feats.cpu().double().numpy()
        i += len(chunk)
    return out


@torch.no_grad()
def activations_from_tensors(images, model, quantize=True):
    """Features float64 ndarray [B, dims] for images float [B,3,H,W] in [-1,1] (generator output).

    With ``quantize`` the images are rounded to 8 bits first, as if saved to PNG and read back, so
    FID during training tracks the FID of the saved results.
    """
    x = (images.float().clamp(-1, 1) + 1) / 2
    if quantize:
        x = torch.round(x * 255) / 255
    dev = next(model.parameters()).device
    return model(x.to(dev)).cpu().double().numpy()


def activation_statistics(act):
    """(mu [d], sigma [d,d]) of features [N,d], as pytorch-fid (np.mean, np.cov rowvar=False)."""
    act = np.asarray(act, dtype=np.float64)
    if act.ndim != 2 or act.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N,d] for statistics, got shape {act.shape}")
    return np.mean(act, axis=0), np.cov(act, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between two Gaussians (pytorch-fid's numerically stabilised version)."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def fid_from_activations(act1, act2):
    mu1, s1 = activation_statistics(act1)
    mu2, s2 = activation_statistics(act2)
    return frechet_distance(mu1, s1, mu2, s2)


def polynomial_kernel(x, y):
    """k(x,y) = (x.y / d + 1)^3 for rows of x [n,d] and y [m,d] -> [n,m]."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Unbiased MMD^2 between samples x [n,d] and y [m,d] with the cubic polynomial kernel."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {n} and {m}")
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                 + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def kid_from_activations(act1, act2, num_subsets=100, max_subset_size=1000, seed=0):
    """Kernel Inception Distance: unbiased MMD^2 averaged over random subsets.

    The subset size is min(max_subset_size, n1, n2), so small sets work; subsets are drawn
    without replacement with a fixed seed. Returns (mean, std) over subsets.
    When both sets fit in one subset, every subset is the whole sets and the result equals the
    unbiased MMD^2 of the full sets.
    """
    act1 = np.asarray(act1, dtype=np.float64)
    act2 = np.asarray(act2, dtype=np.float64)
    size = min(max_subset_size, act1.shape[0], act2.shape[0])
    rng = np.random.RandomState(seed)
    if size == act1.shape[0] and size == act2.shape[0]:
        num_subsets = 1  # every subset would be the same sets
    values = []
    for _ in range(num_subsets):
        x = act1[rng.choice(act1.shape[0], size, replace=False)]
        y = act2[rng.choice(act2.shape[0], size, replace=False)]
        values.append(mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))


class ActivationAccumulator:
    """Collects Inception features of image batches, e.g. for FID during training.

    ``add(images)``: float [B,3,H,W] in [-1,1] (generator output or dataset 'image'); quantised to
    8 bits like saved PNGs. ``activations()`` -> float64 ndarray [N, dims]. Typical use:
    real = ActivationAccumulator(model); fake = ActivationAccumulator(model); add batches to both;
    ``fid_from_activations(real.activations(), fake.activations())``.
    """

    def __init__(self, model, quantize=True):
        self.model = model
        self.quantize = quantize
        self._chunks = []

    def add(self, images):
        self._chunks.append(activations_from_tensors(images, self.model, self.quantize))

    def __len__(self):
        return sum(len(c) for c in self._chunks)

    def activations(self):
        if not self._chunks:
            raise ValueError("no images were added")
        return np.concatenate(self._chunks)
