"""OASIS (Sushko et al., ICLR 2021) as a model of the framework: ``--model oasis``.

Networks ``G`` (the 3D-noise SPADE generator) and ``D`` (a U-Net that segments an image into the
semantic classes plus "fake"), ``models/networks/oasis.py``. Faithful to the official code
(boschresearch/OASIS):

* label channels: channel 0 is the unknown / don't-care class (the dataset's ``unknown_label``),
  the classes follow in order (COCO-Stuff value v -> v+1, 255 -> 0; ADE20K and Cityscapes raw values);
  no instance maps;
* D: per-pixel cross entropy, a real pixel of channel k -> target k+1 weighted by the class balance
  alpha_k = B*H*W / (K * N_k) (K classes present, unknown weight 0), every fake pixel -> target 0;
  plus LabelMix (``--lambda_labelmix``). G: the class-balanced CE of D(G(y)) against k+1 (+ VGG with
  ``--add_vgg_loss``);
* Adam betas (0, 0.999), ``--lr_g`` / ``--lr_d``, no decay; order G step, D step (a fresh fake from G
  in train mode, D on fake, then real, then the mix: as many spectral-norm power iterations as the
  official trainer), EMA update of G (``--EMA_decay``, every state-dict entry averaged);
* weight files ``checkpoints/<name>/models/<epoch>_G.pth``, ``_D.pth``, ``_EMA.pth`` (the official run
  folder; ``latest_iter.txt`` beside ``models/``), besides our full-state ``latest_state.pth``.
"""

import logging
import os

import torch
import torch.nn.functional as F

from models import oasis_options
from models.base_model import BaseModel, Phase
from models.networks import VGGLoss, init_weights
from models.networks.loss import require_vgg19_weights
from models.networks.oasis import OASISDiscriminator, OASISGenerator
from models.networks.ops import to_reference
from models.pix2pix_model import check_label_range, semantic_generator_inputs
from util.distributed import unwrap
from util.errors import CheckpointError
from util.util import write_text_atomic

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------
# the losses (pure functions of tensors)

def class_balance_weights(onehot, ignore_channel0=True):
    """Per-pixel weight [B,H,W] of the class-balanced loss: alpha_c = B*H*W / (K * N_c) for a pixel of
    channel c, N_c its pixel count in the batch, K the number of channels present; with
    ``ignore_channel0`` channel 0 (unknown) is not counted in K and weighs 0. Computed in the
    official order of operations: 1/N_c * numel(onehot) / (K * C)."""
    counts = onehot.sum(dim=(0, 2, 3))
    if ignore_channel0:
        counts = counts.clone()
        counts[0] = 0
    present = (counts > 0).sum()
    coefficients = torch.reciprocal(counts) * onehot.numel() / (present * onehot.size(1))
    if ignore_channel0:
        coefficients[0] = 0
    return coefficients[onehot.argmax(dim=1)]


def n1_targets(onehot, for_real):
    """Targets [B,H,W] of the (N+1)-class loss: channel k -> k + 1 for real pixels, 0 ("fake") for fake."""
    labels = onehot.argmax(dim=1)
    return labels + 1 if for_real else torch.zeros_like(labels)


def n1_cross_entropy(logits, onehot, for_real, balance=True, ignore_channel0=True):
    """Mean per-pixel cross entropy of D's logits [B,C+1,H,W] against :func:`n1_targets`; the real
    targets weighted by :func:`class_balance_weights` (``balance``), the fake ones not."""
    loss = F.cross_entropy(logits, n1_targets(onehot, for_real), reduction="none")
    if for_real and balance:
        return torch.mean(loss * class_balance_weights(onehot, ignore_channel0))
    return torch.mean(loss)


def labelmix(onehot, fake, real, generator=None):
    """LabelMix: (mixed image, mask [B,1,H,W] float). Every class present in the batch (ascending)
    gets one bit ``torch.randint(0, 2, (1,))``; the mask is built as the official code builds it, by
    overwriting the label map class by class in place (so pixels of class 0 whose bit is 1 take the
    bit of class 1 when class 1 is present: the official behaviour, kept). mixed = mask*real +
    (1-mask)*fake."""
    target = onehot.argmax(dim=1, keepdim=True)
    for c in torch.unique(target):
        target[target == c] = torch.randint(0, 2, (1,), generator=generator).to(target.device)
    mask = target.float()
    return mask * real + (1 - mask) * fake, mask


def labelmix_loss(mask, d_mixed, d_fake, d_real):
    """Mean squared error between D(mixed) and the mix of D(real) and D(fake) by the same mask."""
    return F.mse_loss(d_mixed, mask * d_real + (1 - mask) * d_fake)


# ---------------------------------------------------------------------------------------------------

class OasisModel(BaseModel):
    """G, D and the OASIS losses.

    Data: the batch dict of the semantic datasets ('label' int64 [B,1,H,W] in the dataset's encoding,
    'image' [B,3,H,W] in [-1,1], 'path', 'label_path'). Losses: generator phase {'Generator', 'Vgg'},
    discriminator phase {'D_fake', 'D_real', 'LabelMix'} (the official names). Visuals:
    'input_label' (OASIS channels), 'synthesized_image', 'real_image'.
    """

    loss_names = ("Generator", "Vgg", "D_fake", "D_real", "LabelMix")
    evaluation_pair = ("real_image", "synthesized_image")
    inference_network_names = ("G",)
    ema_network_names = ("G",)
    ema_after_phase = "discriminator"
    ema_average_buffers = True  # the official EMA averages the whole state dict
    ema_recalibration = "in_place"  # the official update_EMA: train-mode passes, momentum 0.1
    image_rounding = "truncate"  # PNGs as the official code writes them: uint8((x + 1) / 2 * 255)
    resamples_classes = True
    default_name = "synthetic_oasis"

    modify_commandline_options = staticmethod(oasis_options.modify_commandline_options)
    validate_options = staticmethod(oasis_options.validate_options)

    @staticmethod
    def check_files(opt):
        if opt.isTrain and opt.add_vgg_loss:
            require_vgg19_weights(opt.vgg_weights)

    @staticmethod
    def weight_file(epoch, name):
        """The official run folder: ``models/<epoch>_G.pth``, ``_D.pth``, ``_EMA.pth`` (EMA of G)."""
        return os.path.join("models", f"{epoch}_{'EMA' if name == 'G_ema' else name}.pth")

    @staticmethod
    def _counter_file(opt, label):
        return os.path.join(opt.checkpoints_dir, opt.name, f"{label}_iter.txt")

    def weights_saved(self, opt, label, total_iters):
        """``latest_iter.txt`` / ``best_iter.txt`` beside ``models/``, as the official code writes them:
        the 0-based index of the last iteration done."""
        if label in ("latest", "best"):
            write_text_atomic(self._counter_file(opt, label), str(int(total_iters) - 1))

    @staticmethod
    def iterations_done(opt, label):
        """From ``<label>_iter.txt`` (latest / best) or a numeric label, as the official trainer resumes
        (``get_start_iters``): it continues after iteration ``n`` (``n + 1`` done), except that ``n = 0``
        counts as not started (iteration 0 runs again)."""
        label = str(label)
        if label.isdigit():
            return int(label) + 1 if int(label) else None
        path = OasisModel._counter_file(opt, label)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
        if not text.lstrip("-").isdigit():
            raise CheckpointError(f"{path} should hold an iteration number, it holds {text[:40]!r}")
        return int(text) + 1 if int(text) > 0 else None

    def __init__(self, opt):
        super().__init__(opt)
        # As the official code: both networks built, then both initialised (the same draws per seed).
        self.netG = OASISGenerator(opt)
        self.netD = OASISDiscriminator(opt) if opt.isTrain else None
        for net in (self.netG, self.netD):
            if net is not None:
                init_weights(net, "xavier", 0.02).to(self.device)
        if opt.isTrain and not opt.fast_ops:
            # Training runs the official computation (torch's spectral norm on the weight, SPADE's dense
            # convolution of the one-hot map): the fast layers give the same values up to float rounding,
            # but Adam's first steps turn the sign of gradient elements that are float noise (e.g. a
            # conv bias before BatchNorm) into whole +-lr steps, so fine-tuning from an official run would
            # drift from the official trainer. Inference (test.py) keeps the fast layers.
            to_reference(self.netG)
            to_reference(self.netD)
        self.network_names = ("G", "D") if self.netD is not None else ("G",)
        self.unknown = opt.oasis_unknown_label
        if opt.isTrain and opt.add_vgg_loss and not opt.dry_run:
            self.criterionVGG = VGGLoss(opt.vgg_weights).to(self.device)
        self._visuals = {}

    # ------------------------------------------------------------------ the contract
    def create_optimizers(self):
        betas = (self.opt.beta1, self.opt.beta2)
        optimizers = {"G": torch.optim.Adam(self.netG.parameters(), lr=self.opt.lr_g, betas=betas)}
        if self.netD is not None:
            optimizers["D"] = torch.optim.Adam(self.netD.parameters(), lr=self.opt.lr_d, betas=betas)
        return optimizers

    def learning_rates(self, epoch):
        return {"G": self.opt.lr_g, "D": self.opt.lr_d}  # constant: OASIS has no decay

    def training_phases(self):
        return [Phase("generator", optimizer="G", frozen=("D",)), Phase("discriminator", optimizer="D")]

    def compute_losses(self, phase, data):
        semantics, real, class_ids = self.preprocess_input_with_class_ids(data)
        opt = self.opt
        if phase == "generator":
            fake = self.netG(semantics, class_ids=class_ids).float()
            losses = {"Generator": n1_cross_entropy(self.netD(fake).float(), semantics, True,
                                                    not opt.no_balancing_inloss, self.ignore_channel0)}
            if opt.add_vgg_loss:
                losses["Vgg"] = opt.lambda_vgg * self.criterionVGG(fake, real)
            self._visuals = {"input_label": data["label"], "synthesized_image": fake.detach(),
                             "real_image": data["image"]}
            return losses
        if phase == "discriminator":
            with torch.no_grad():
                fake = self.netG(semantics, class_ids=class_ids).float()
            d_fake = self.netD(fake).float()
            d_real = self.netD(real).float()
            losses = {"D_fake": n1_cross_entropy(d_fake, semantics, False),
                      "D_real": n1_cross_entropy(d_real, semantics, True, not opt.no_balancing_inloss,
                                                 self.ignore_channel0)}
            if not opt.no_labelmix:
                mixed, mask = labelmix(semantics, fake, real)
                d_mixed = self.netD(mixed).float()
                losses["LabelMix"] = opt.lambda_labelmix * labelmix_loss(mask, d_mixed, d_fake, d_real)
            return losses
        raise ValueError(f"unknown phase {phase!r}; known: generator, discriminator")

    def network_inputs(self, name, data):
        return semantic_generator_inputs(self, name, data)

    @torch.no_grad()
    def inference(self, data, extras=False, z=None):
        """{'input_label', 'synthesized_image' [B,3,H,W], 'real_image'}; ``z`` as the generator takes
        it (None: drawn)."""
        semantics, _, class_ids = self.preprocess_input_with_class_ids(data)
        fake = self.netG(semantics, z=z, class_ids=class_ids).float()
        return {"input_label": data["label"], "synthesized_image": fake, "real_image": data["image"]}

    @torch.no_grad()
    def inference_samples(self, data, n_samples, resample_class=None, generator=None):
        """``n_samples`` inference outputs of ``data`` with different noise from ``generator``. With
        ``resample_class`` (a label value of the dataset, as in its label files after the dataset's
        mapping) sample 0 draws z for the whole image and the others re-draw it only inside the pixels
        of that class (the paper's local re-sampling: the rest of the image keeps sample 0's noise)."""
        semantics, _, class_ids = self.preprocess_input_with_class_ids(data)
        if resample_class is not None:
            resample_class = int(self.oasis_channels(torch.tensor(int(resample_class))))
        b = semantics.size(0)
        dim = unwrap_z_dim(self.netG)
        base = torch.randn(b, dim, generator=generator).to(self.device)
        outs = []
        for k in range(n_samples):
            if k == 0:
                z = base
            else:
                z = torch.randn(b, dim, generator=generator).to(self.device)
                if resample_class is not None:
                    h, w = semantics.shape[2:]
                    inside = (class_ids == resample_class)[:, None]
                    z = torch.where(inside, z.view(b, dim, 1, 1).expand(b, dim, h, w),
                                    base.view(b, dim, 1, 1).expand(b, dim, h, w))
            outs.append(self.inference(data, z=z))
        return outs

    @property
    def draws_noise(self):
        """The generator takes 3D noise (not with --no_3dnoise)."""
        return bool(unwrap(self.netG).z_dim)

    @torch.no_grad()
    def inference_seeded(self, data, seed, class_seeds=None, extras=False):
        """The noise vector drawn from ``seed`` everywhere, except inside the pixels of each label value
        of ``class_seeds`` ({value: seed}, any number of classes), which take the vector drawn from their
        own seed: the paper's local re-sampling, one class after another (the painting demo)."""
        if not self.draws_noise:
            if class_seeds:
                raise ValueError("this generator takes no noise (--no_3dnoise): there is no noise to re-sample")
            return self.inference(data, extras=extras)
        semantics, _, class_ids = self.preprocess_input_with_class_ids(data)
        b, _, h, w = semantics.shape
        dim = unwrap_z_dim(self.netG)

        def draw(s):
            return torch.randn(b, dim, generator=torch.Generator().manual_seed(int(s))).to(self.device)

        z = draw(seed)
        if class_seeds:
            z = z.view(b, dim, 1, 1).expand(b, dim, h, w)
            for value, s in class_seeds.items():
                inside = (class_ids == int(self.oasis_channels(torch.tensor(int(value)))))[:, None]
                z = torch.where(inside, draw(s).view(b, dim, 1, 1).expand(b, dim, h, w), z)
        return self.inference(data, extras=extras, z=z)

    # ------------------------------------------------------------------ input
    @property
    def ignore_channel0(self):
        """Channel 0 is the unknown class (weight 0 in the balanced loss) when the dataset has one."""
        return self.unknown is not None

    def oasis_channels(self, label_map):
        """Dataset label values -> OASIS channels: the unknown value to 0, the values below it up by one."""
        u = self.unknown
        if u is None:
            return label_map
        return torch.where(label_map == u, torch.zeros_like(label_map),
                           torch.where(label_map < u, label_map + 1, label_map))

    def preprocess_input(self, data):
        """-> (one-hot semantics [B,semantic_nc,H,W] in OASIS channels, real image [B,3,H,W])."""
        semantics, real, _ = self.preprocess_input_with_class_ids(data)
        return semantics, real

    def preprocess_input_with_class_ids(self, data):
        label_map = data["label"].to(self.device, non_blocking=True).long()
        if label_map.dim() != 4 or label_map.size(1) != 1:
            raise ValueError(f"data['label'] must be [B,1,H,W], got shape {tuple(label_map.shape)}")
        nc = self.opt.semantic_nc
        check_label_range(label_map, nc, data)
        channels = self.oasis_channels(label_map)
        b, _, h, w = channels.shape
        semantics = torch.zeros(b, nc, h, w, device=self.device).scatter_(1, channels, 1.0)
        real = data["image"].to(self.device, non_blocking=True)
        return semantics, real, channels[:, 0]


def unwrap_z_dim(net):
    dim = unwrap(net).z_dim
    if not dim:
        raise ValueError("this generator takes no noise (--no_3dnoise): all samples would be the same image")
    return dim
