"""Paired perceptual metrics: LPIPS and FRD (Fréchet ResNet Distance).

Both compare each generated image with the real image of the same file stem and average over pairs.
When a pair differs in size, the real image is resized to the generated image's size (bicubic, as
the data loaders resize photos), because the generator's output size is what is being judged.
"""
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from util.metrics.images import batches, load_image01
from util.metrics.weights import load_into, load_state_dict_file, resolve_weights

logger = logging.getLogger(__name__)

# torchvision's ImageNet weight files (the names torchvision itself caches them under).
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
RESNET50_FILE = "resnet50-0676ba61.pth"  # torchvision ResNet50_Weights.IMAGENET1K_V1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_pair01(real_path, fake_path):
    """(real, fake) float tensors [3,H,W] in [0,1]; real resized (bicubic) to the fake's size."""
    fake = load_image01(fake_path)
    real = load_image01(real_path)
    if real.shape[1:] != fake.shape[1:]:
        with Image.open(real_path) as img:
            resized = img.convert("RGB").resize((fake.shape[2], fake.shape[1]), Image.BICUBIC)
        real = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1).float() / 255.0
    return real, fake


# ---------------------------------------------------------------------------------------------- LPIPS
def load_lpips(net="alex", backbone_weights=None, device="cpu"):
    """The `lpips` package's LPIPS v0.1 model, assembled from local files only.

    The linear calibration layers come from the weight files shipped inside the lpips package; the
    backbone (AlexNet or VGG16 ImageNet weights) from torchvision's file in the hub cache or
    ``backbone_weights``. (lpips itself would download the backbone through torchvision.)
    Call: model(x, y) with x, y float [B,3,H,W] in [-1,1] -> distances [B,1,1,1].
    """
    import lpips
    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_BACKBONE_FILES)}, got '{net}'")
    # find the file before building: a missing file should fail fast, not after a VGG16 init
    path = resolve_weights(LPIPS_BACKBONE_FILES[net], backbone_weights, f"LPIPS {net} backbone",
                           "--lpips_weights")
    model = lpips.LPIPS(pretrained=False, net=net, version="0.1", pnet_rand=True, verbose=False)
    lin_path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{net}.pth")
    if not os.path.isfile(lin_path):
        raise FileNotFoundError(f"LPIPS: linear-layer weights '{lin_path}' missing from the lpips package")
    lin_state = load_state_dict_file(lin_path, "LPIPS linear layers")
    for k in range(len(model.lins)):
        sub = {key.split(".", 1)[1]: v for key, v in lin_state.items() if key.startswith(f"lin{k}.")}
        load_into(model.lins[k], sub, lin_path, f"LPIPS linear layer {k}")

    tv_state = load_state_dict_file(path, f"LPIPS {net} backbone")
    # lpips splits torchvision's `features` Sequential into slices but keeps the layer indices:
    # net.slice<k>.<i>.weight is features.<i>.weight.
    backbone = {}
    for key in model.net.state_dict():
        tv_key = "features." + key.split(".", 1)[1]
        if tv_key not in tv_state:
            raise ValueError(f"LPIPS {net} backbone: '{path}' has no '{tv_key}' "
                             f"(expected torchvision's {LPIPS_BACKBONE_FILES[net]} layout)")
        backbone[key] = tv_state[tv_key]
    load_into(model.net, backbone, path, f"LPIPS {net} backbone")
    logger.info("LPIPS %s: backbone %s, linear layers %s", net, path, lin_path)
    return model.to(device).eval()


@torch.no_grad()
def lpips_pairs(pairs, model, batch_size=8):
    """Mean LPIPS distance over (real_path, fake_path) pairs."""
    dev = next(model.parameters()).device
    dists = []
    for chunk in batches(list(pairs), batch_size):
        loaded = [load_pair01(r, f) for r, f in chunk]
        # Batch only equal sizes; pairs of other sizes go one by one.
        if len({t[1].shape for t in loaded}) == 1:
            groups = [loaded]
        else:
            groups = [[t] for t in loaded]
        for g in groups:
            real = torch.stack([t[0] for t in g]).to(dev) * 2 - 1
            fake = torch.stack([t[1] for t in g]).to(dev) * 2 - 1
            dists.append(model(real, fake).flatten().cpu())
    return float(torch.cat(dists).mean())


# ------------------------------------------------------------------------------------------------ FRD
def load_resnet50(weights=None, device="cpu"):
    """torchvision ResNet-50 with ImageNet weights from a local file (default resnet50-0676ba61.pth).

    Input: float [B,3,224,224] ImageNet-normalised. Output: logits [B,1000] (the fc1000 layer).
    """
    path = resolve_weights(RESNET50_FILE, weights, "FRD ResNet-50", "--frd_weights")
    net = torchvision.models.resnet50(weights=None)
    load_into(net, load_state_dict_file(path, "FRD ResNet-50"), path, "FRD ResNet-50")
    logger.info("FRD ResNet-50 weights: %s", path)
    return net.to(device).eval()


def discrete_frechet_distance(p, q):
    """Discrete Fréchet distance between two 1-D sequences p [n], q [m] (point distance |p_i - q_j|).

    Dynamic programme c[i,j] = max(min(c[i-1,j], c[i-1,j-1], c[i,j-1]), |p_i - q_j|), evaluated
    one anti-diagonal at a time (cells on diagonal i+j depend only on the two previous ones).
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    n, m = len(p), len(q)
    if n == 0 or m == 0:
        raise ValueError("discrete Fréchet distance of an empty sequence")
    inf = np.inf
    ca = np.full((n, m), inf)
    for k in range(n + m - 1):
        i = np.arange(max(0, k - m + 1), min(n, k + 1))
        j = k - i
        d = np.abs(p[i] - q[j])
        if k == 0:
            ca[0, 0] = d[0]
            continue
        up = np.where(i > 0, ca[np.maximum(i - 1, 0), j], inf)
        left = np.where(j > 0, ca[i, np.maximum(j - 1, 0)], inf)
        diag = np.where((i > 0) & (j > 0), ca[np.maximum(i - 1, 0), np.maximum(j - 1, 0)], inf)
        ca[i, j] = np.maximum(np.minimum(np.minimum(up, left), diag), d)
    return float(ca[n - 1, m - 1])


def _resnet_input(x01):
    """[B,3,H,W] in [0,1] -> 224x224 ImageNet-normalised (bicubic with antialias, as imresize)."""
    x = F.interpolate(x01, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x.clamp(0, 1) - mean) / std


@torch.no_grad()
def resnet_outputs(pairs, model, batch_size=8):
    """ResNet-50 fc outputs (float64 ndarrays [N,1000]) of the real and fake image of every pair."""
    dev = next(model.parameters()).device
    real_out, fake_out = [], []
    for chunk in batches(list(pairs), batch_size):
        loaded = [load_pair01(r, f) for r, f in chunk]
        real = torch.cat([_resnet_input(t[0][None].to(dev)) for t in loaded])
        fake = torch.cat([_resnet_input(t[1][None].to(dev)) for t in loaded])
        real_out.append(model(real).double().cpu().numpy())
        fake_out.append(model(fake).double().cpu().numpy())
    return np.concatenate(real_out), np.concatenate(fake_out)


def frd_from_outputs(real_out, fake_out, distance="frechet"):
    """Mean per-pair distance of ResNet outputs [N,1000] (see frd_pairs)."""
    if distance not in ("frechet", "l2"):
        raise ValueError(f"FRD distance must be 'frechet' or 'l2', got '{distance}'")
    if distance == "l2":
        return float(np.mean(np.linalg.norm(real_out - fake_out, axis=1)))
    return float(np.mean([discrete_frechet_distance(a, b) for a, b in zip(real_out, fake_out)]))


def frd_pairs(pairs, model, distance="frechet", batch_size=8):
    """FRD: mean over (real_path, fake_path) pairs of a distance between the two images' ResNet-50
    1000-d fc outputs (images resized to 224x224, bicubic with antialiasing, ImageNet-normalised).

    ``distance='frechet'`` (default) treats each 1000-d output as a sequence and takes the discrete
    Fréchet distance between the two sequences, as the public FRD script of the GestureGAN / DAGAN
    authors' group does (MATLAB ``DiscreteFrechetDist`` on ``fc1000`` activations of ``resnet50``);
    ``'l2'`` is the Euclidean distance between the two vectors. The DAGAN paper itself only names
    FRD and cites GestureGAN for it. The authors' numbers come from MATLAB's ResNet-50 weights and
    ``imresize``; ours from torchvision's, so values are comparable in kind, not identical.
    """
    if distance not in ("frechet", "l2"):
        raise ValueError(f"FRD distance must be 'frechet' or 'l2', got '{distance}'")
    return frd_from_outputs(*resnet_outputs(pairs, model, batch_size), distance=distance)
