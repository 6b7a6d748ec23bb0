"""Losses: GAN (hinge | ls | original | w), VGG19 perceptual, KL divergence."""

import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import MissingFileError

logger = logging.getLogger(__name__)

GAN_MODES = ("hinge", "ls", "original", "w")
VGG19_FILE = "vgg19-dcbb9e9d.pth"
# relu1_1 .. relu5_1 of torchvision's vgg19.features and their weights in the perceptual loss.
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class GANLoss(nn.Module):
    """Adversarial loss on a discriminator output.

    ``forward(pred, target_is_real, for_discriminator=True) -> scalar``. ``pred`` is a tensor or the
    multiscale discriminator's list (per scale) of feature lists; for a list the last entry of each
    scale is scored and the per-scale losses are averaged. hinge: D real mean(relu(1 - x)), D fake
    mean(relu(1 + x)), G -mean(x); ls: MSE to 1/0; original: BCE with logits; w: -mean / mean.
    """

    def __init__(self, gan_mode="hinge", target_real_label=1.0, target_fake_label=0.0):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {gan_mode!r}; known: {', '.join(GAN_MODES)}")
        self.gan_mode = gan_mode
        self.real_label = target_real_label
        self.fake_label = target_fake_label

    def _target(self, pred, target_is_real):
        return torch.full_like(pred, self.real_label if target_is_real else self.fake_label)

    def single(self, pred, target_is_real, for_discriminator=True):
        # Under mixed precision D's outputs are bf16/fp16: the loss itself is computed in fp32.
        pred = pred.float()
        if self.gan_mode == "original":
            return F.binary_cross_entropy_with_logits(pred, self._target(pred, target_is_real))
        if self.gan_mode == "ls":
            return F.mse_loss(pred, self._target(pred, target_is_real))
        if self.gan_mode == "hinge":
            if for_discriminator:
                return F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
            if not target_is_real:
                raise ValueError("the hinge loss of the generator must aim at 'real'")
            return -pred.mean()
        return -pred.mean() if target_is_real else pred.mean()

    def forward(self, pred, target_is_real, for_discriminator=True):
        if isinstance(pred, (list, tuple)):
            total = 0
            for pred_i in pred:
                if isinstance(pred_i, (list, tuple)):
                    pred_i = pred_i[-1]
                total = total + self.single(pred_i, target_is_real, for_discriminator)
            return total / len(pred)
        return self.single(pred, target_is_real, for_discriminator)


def vgg19_weights_path(path=None):
    return path or os.path.join(torch.hub.get_dir(), "checkpoints", VGG19_FILE)


def require_vgg19_weights(path=None):
    """The VGG19 weight file of the perceptual loss (``path`` or the torch hub cache entry); a
    :class:`util.errors.MissingFileError` saying where to put it when it does not exist. Reads nothing."""
    path = vgg19_weights_path(path)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"VGG19 weights for the perceptual loss not found: {path}. Put torchvision's ImageNet "
            f"file {VGG19_FILE} there (torch hub cache: <TORCH_HOME or ~/.cache/torch>/hub/"
            f"checkpoints/), give its path with --vgg_weights, or train without this loss "
            f"(--no_vgg_loss)."
        )
    return path


class VGG19(nn.Module):
    """torchvision VGG19 features up to relu5_1, frozen, with local ImageNet weights.

    ``forward(x [B,3,H,W]) -> [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1]``.
    The weights come from ``weights_path`` or ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth``
    (torchvision's own cache file); nothing is downloaded. ``pretrained=False`` keeps torchvision's
    random initialisation and reads no file: same architecture and cost, for benchmarks only.
    """

    def __init__(self, weights_path=None, pretrained=True):
        super().__init__()
        from torchvision.models import vgg19

        if not pretrained:
            self._set_features(vgg19(weights=None).features)
            logger.warning("VGG19 of the perceptual loss is randomly initialised (pretrained=False)")
            return
        path = require_vgg19_weights(weights_path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path} is not a VGG19 state dict (got {type(state).__name__})")
        # Build on the meta device and take the loaded tensors as they are: no wasted random init of
        # the 140M-parameter model, and strict loading still checks every key and shape.
        with torch.device("meta"):
            model = vgg19(weights=None)
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            raise ValueError(f"{path} does not hold torchvision VGG19 weights: {err}") from None
        self._set_features(model.features)
        logger.info("VGG19 weights loaded from %s", path)

    def _set_features(self, features):
        self.slices = nn.ModuleList(
            nn.Sequential(*[features[i] for i in range(start, stop)]) for start, stop in VGG_SLICES
        )
        for param in self.parameters():
            param.requires_grad_(False)

    def forward(self, x):
        outputs = []
        for block in self.slices:
            x = block(x)
            outputs.append(x)
        return outputs


class VGGLoss(nn.Module):
    """Perceptual loss ``forward(x, y [B,3,H,W] in [-1,1]) -> scalar``:
    sum_i w_i * L1(VGG_i(x), VGG_i(y).detach()), w = 1/32, 1/16, 1/8, 1/4, 1 on relu1_1..relu5_1.
    Images are fed in [-1,1] without ImageNet normalisation, as the reference does.
    """

    def __init__(self, weights_path=None, pretrained=True):
        super().__init__()
        self.vgg = VGG19(weights_path, pretrained=pretrained)
        self.criterion = nn.L1Loss()
        self.weights = VGG_LAYER_WEIGHTS

    def forward(self, x, y):
        x_vgg, y_vgg = self.vgg(x), self.vgg(y)
        loss = 0
        for weight, fx, fy in zip(self.weights, x_vgg, y_vgg):
            # fp32 loss even when the VGG features come out of autocast in bf16/fp16.
            loss = loss + weight * self.criterion(fx.float(), fy.detach().float())
        return loss


class KLDLoss(nn.Module):
    """``forward(mu, logvar [B,z]) -> scalar`` = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))
    (summed over batch and z, as the reference)."""

    def forward(self, mu, logvar):
        mu, logvar = mu.float(), logvar.float()
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
