"""SPADE / DAGAN as a model of the framework (models/base_model.py): G (+ D, E) and SPADE's losses.

Networks ``G`` (``--netG spade|dagan``), ``D`` (training), ``E`` (``--use_vae``). Training phases, in
the official trainer's order: ``generator`` (G and E step, D frozen; every ``--D_steps_per_G``-th
iteration) then ``discriminator`` (D step on a freshly generated fake). TTUR (default): Adam with
betas (0, 0.9), G at lr/2 and D at lr*2; ``--no_TTUR``: lr and (beta1, beta2) for both; SPADE's linear
decay to zero over ``--niter_decay`` epochs after ``--niter``.
"""

import logging

import torch
import torch.nn as nn

from models import networks, pix2pix_options
from models.base_model import BaseModel, Phase
from models.networks.loss import require_vgg19_weights
from util.distributed import unwrap

logger = logging.getLogger(__name__)


def instance_edges(instance):
    """[B,1,H,W] int ids -> float [B,1,H,W]: 1 where a pixel's id differs from its left/right or
    top/bottom neighbour (both pixels of a differing pair are marked)."""
    edge = torch.zeros_like(instance, dtype=torch.bool)
    horizontal = instance[:, :, :, 1:] != instance[:, :, :, :-1]
    vertical = instance[:, :, 1:, :] != instance[:, :, :-1, :]
    edge[:, :, :, 1:] |= horizontal
    edge[:, :, :, :-1] |= horizontal
    edge[:, :, 1:, :] |= vertical
    edge[:, :, :-1, :] |= vertical
    return edge.float()


def check_label_range(label_map, nc, data):
    """ValueError naming the label file of the first value of ``label_map`` [B,1,H,W] outside [0, nc)."""
    low, high = int(label_map.min()), int(label_map.max())
    if low >= 0 and high < nc:
        return
    paths = data.get("label_path") or ["<unknown label file>"] * label_map.size(0)
    for i in range(label_map.size(0)):
        sample = label_map[i]
        bad = sample[(sample < 0) | (sample >= nc)]
        if bad.numel():
            path = paths[i] if i < len(paths) else "<unknown label file>"
            raise ValueError(
                f"label value {int(bad[0])} out of range [0, {nc}) in {path} "
                f"(label_nc={nc} channels incl. dontcare); check --label_nc / --contain_dontcare_label"
            )


def semantic_generator_inputs(model, name, data):
    """``network_inputs`` of a semantic model whose only re-estimated network is G:
    (semantics, z=None, class_ids) from ``model.preprocess_input_with_class_ids``."""
    if name != "G":
        raise ValueError(f"no inputs defined for net{name}")
    semantics, _, class_ids = model.preprocess_input_with_class_ids(data)
    return (semantics, None, class_ids)


def spade_learning_rate(opt, epoch):
    """Base learning rate used during ``epoch`` (1-based) under SPADE's linear decay.

    The reference trainer lowers the rate at the end of every epoch > niter by lr / niter_decay,
    so epochs 1..niter+1 run at ``lr`` and epoch niter+niter_decay runs at lr / niter_decay. The
    same repeated subtraction is done here (not a closed form) so the rates are bit-identical to
    the reference's, and the result depends only on the epoch, which makes resuming trivial.
    """
    new_lr = opt.lr
    if opt.niter_decay > 0:
        lrd = opt.lr / opt.niter_decay
        for _ in range(max(0, epoch - 1 - opt.niter)):
            new_lr -= lrd
    return max(new_lr, 0.0)


class Pix2PixModel(BaseModel):
    """G (+ D, E) and the losses of SPADE, used unchanged by DAGAN.

    Data: the batch dict of the semantic datasets ('label' int64 [B,1,H,W], 'instance' int64
    [B,1,H,W], 'image' float [B,3,H,W] in [-1,1], 'path' / 'label_path' list[str]).
    Losses: generator phase {'GAN', 'GAN_Feat', 'VGG', 'KLD'} (those switched on), discriminator
    phase {'D_Fake', 'D_real'}. Visuals: 'input_label', 'synthesized_image', 'real_image'; with
    ``extras`` and ``--netG dagan`` also 'sam_attention' [B,1,H,W] and 'cam_weights' [B,C].
    """

    loss_names = ("GAN", "GAN_Feat", "VGG", "KLD", "D_Fake", "D_real")
    evaluation_pair = ("real_image", "synthesized_image")
    ema_network_names = ("G",)
    ema_after_phase = "generator"

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return pix2pix_options.modify_commandline_options(parser, is_train)

    @staticmethod
    def validate_options(opt):
        pix2pix_options.validate_options(opt)

    @staticmethod
    def check_files(opt):
        if opt.isTrain and not opt.no_vgg_loss:
            require_vgg19_weights(opt.vgg_weights)

    def __init__(self, opt):
        super().__init__(opt)
        self.netG = networks.define_G(opt)
        self.netD = networks.define_D(opt) if opt.isTrain else None
        self.netE = networks.define_E(opt) if opt.use_vae else None
        self.network_names = ("G",) + (("D",) if self.netD is not None else ()) + (
            ("E",) if self.netE is not None else ())
        self.inference_network_names = ("G", "E") if opt.use_vae else ("G",)
        if opt.isTrain:
            self.criterionGAN = networks.GANLoss(opt.gan_mode)
            self.criterionFeat = nn.L1Loss()
            if not opt.no_vgg_loss:
                self.criterionVGG = networks.VGGLoss(opt.vgg_weights)
            if opt.use_vae:
                self.KLDLoss = networks.KLDLoss()
        self.to(self.device)
        # NHWC weights and activations (``--memory_format channels_last``, test.py's default): same
        # images, faster convolutions; state-dict keys and shapes unchanged, checkpoints written contiguous.
        self.memory_format = torch.contiguous_format
        self.set_memory_format(opt.memory_format)
        self._visuals = {}

    def set_memory_format(self, name):
        """'channels_last' (inference only: see options) or 'contiguous': converts the weights and
        the layout of the inputs built by :meth:`preprocess_input`."""
        formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
        if name not in formats:
            raise ValueError(f"unknown memory format {name!r}; known: {', '.join(formats)}")
        if formats[name] is not self.memory_format:
            self.memory_format = formats[name]
            self.to(memory_format=self.memory_format)
        return self

    # ------------------------------------------------------------------ the contract
    def create_optimizers(self):
        """Adam for G (+E) and for D; ``{'G': ..., 'D': ...}`` ('D' only when training)."""
        opt = self.opt
        G_params = list(self.netG.parameters())
        if self.netE is not None:
            G_params += list(self.netE.parameters())
        lrs = self.learning_rates(1)
        betas = (opt.beta1, opt.beta2)  # (0, 0.9) under TTUR (models/pix2pix_options.py)
        # torch's fused Adam kernel (CPU and CUDA): one pass per tensor instead of one per operation.
        fused = all(p.dtype == torch.float32 for p in G_params) and self.device.type in ("cpu", "cuda")
        optimizers = {"G": torch.optim.Adam(G_params, lr=lrs["G"], betas=betas, fused=fused)}
        if self.netD is not None:
            optimizers["D"] = torch.optim.Adam(self.netD.parameters(), lr=lrs["D"], betas=betas, fused=fused)
        return optimizers

    def learning_rates(self, epoch):
        """{'G': lr, 'D': lr} during ``epoch``: TTUR halves G's and doubles D's rate (--no_TTUR: the same)."""
        base = spade_learning_rate(self.opt, epoch)
        if self.opt.no_TTUR:
            return {"G": base, "D": base}
        return {"G": base / 2, "D": base * 2}

    def training_phases(self):
        return [Phase("generator", optimizer="G", frozen=("D",), every=self.opt.D_steps_per_G),
                Phase("discriminator", optimizer="D")]

    def compute_losses(self, phase, data):
        input_semantics, real_image, class_ids = self.preprocess_input_with_class_ids(data)
        if phase == "generator":
            losses, fake = self.compute_generator_loss(input_semantics, real_image, class_ids)
            self._visuals = {"input_label": data["label"], "synthesized_image": fake.detach(),
                             "real_image": data["image"]}
            return losses
        if phase == "discriminator":
            return self.compute_discriminator_loss(input_semantics, real_image, class_ids)
        raise ValueError(f"unknown phase {phase!r}; known: generator, discriminator")

    def network_inputs(self, name, data):
        return semantic_generator_inputs(self, name, data)

    @property
    def image_rounding(self):
        """How test.py quantises PNGs: the generator's own official way (``image_rounding`` of its class,
        e.g. the condconv generator's ``truncate``), else ``round``."""
        return getattr(unwrap(self.netG), "image_rounding", BaseModel.image_rounding)

    @property
    def draws_noise(self):
        """With --use_vae the style code z is sampled (from the photo's encoding or N(0, I))."""
        return bool(self.opt.use_vae)

    @property
    def takes_style_image(self):
        return bool(self.opt.use_vae)

    @property
    def extra_visual_names(self):
        """Names :meth:`inference` adds with ``extras=True`` (the DAGAN generator's attention)."""
        net = unwrap(self.netG)
        return ("sam_attention", "cam_weights") if hasattr(net, "forward_with_attention") else ()

    @torch.no_grad()
    def inference(self, data, extras=False):
        """{'input_label', 'synthesized_image' [B,3,H,W], 'real_image'} (+ attention with ``extras``).
        With --use_vae the style comes from data['image'] (z sampled from its encoding, as SPADE's test),
        or with test.py's --sample_z from N(0, I)."""
        input_semantics, real_image, class_ids = self.preprocess_input_with_class_ids(data)
        z = None
        if self.opt.use_vae:
            if getattr(self.opt, "sample_z", False):  # test.py --sample_z: z ~ N(0, I) from the seeded RNG
                z = torch.randn(real_image.size(0), self.opt.z_dim, device=real_image.device)
            else:  # SPADE's test: the encoding of the real photo, sampled
                z = self.encode_z(real_image)[0]
        out = {"input_label": data["label"]}
        if extras and self.extra_visual_names:
            net = unwrap(self.netG)
            fake, maps = net.forward_with_attention(input_semantics, z, class_ids=class_ids)
            if maps.get("sam") is not None:
                out["sam_attention"] = maps["sam"]
            if maps.get("cam") is not None:
                out["cam_weights"] = maps["cam"]
        else:
            fake = self.netG(input_semantics, z=z, class_ids=class_ids)
        out["synthesized_image"] = fake.float()
        out["real_image"] = data["image"]
        return out

    # ------------------------------------------------------------------ input
    def preprocess_input(self, data):
        """-> (input_semantics [B,semantic_nc,H,W] one-hot (+ instance edge map), real image [B,3,H,W])."""
        input_semantics, real_image, _ = self.preprocess_input_with_class_ids(data)
        return input_semantics, real_image

    def preprocess_input_with_class_ids(self, data):
        """-> (input_semantics, real image, class ids [B,H,W] int64): :meth:`preprocess_input` and the
        label map the one-hot channels encode (the generator's ``class_ids``: SPADE's look-up path
        needs not recover them from the map)."""
        label_map = data["label"].to(self.device, non_blocking=True).long()
        if label_map.dim() != 4 or label_map.size(1) != 1:
            raise ValueError(f"data['label'] must be [B,1,H,W], got shape {tuple(label_map.shape)}")
        nc = self.opt.label_nc + (1 if self.opt.contain_dontcare_label else 0)
        check_label_range(label_map, nc, data)
        bs, _, h, w = label_map.size()
        fmt = self.memory_format
        if fmt is torch.channels_last:
            # Built as [B,H,W,C] and viewed as [B,C,H,W]: one-hot in NHWC without a layout copy.
            input_semantics = torch.zeros(bs, h, w, nc, device=self.device).scatter_(
                3, label_map.permute(0, 2, 3, 1), 1.0).permute(0, 3, 1, 2)
        else:
            input_semantics = torch.zeros(bs, nc, h, w, device=self.device).scatter_(1, label_map, 1.0)
        if not self.opt.no_instance:
            instance = data["instance"].to(self.device, non_blocking=True)
            edges = instance_edges(instance).contiguous(memory_format=fmt)
            input_semantics = torch.cat((input_semantics, edges), dim=1)
        real_image = data["image"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        return input_semantics, real_image, label_map[:, 0]

    # ------------------------------------------------------------------ losses
    def compute_generator_loss(self, input_semantics, real_image, class_ids=None):
        G_losses = {}
        fake_image, KLD_loss = self.generate_fake(input_semantics, real_image, compute_kld_loss=self.opt.use_vae,
                                                  class_ids=class_ids)
        if KLD_loss is not None:
            G_losses["KLD"] = KLD_loss
        pred_fake, pred_real = self.discriminate(input_semantics, fake_image, real_image)
        G_losses["GAN"] = self.criterionGAN(pred_fake, True, for_discriminator=False)
        if not self.opt.no_ganFeat_loss:
            # The last output of each list is a score map (GAN loss); match every layer before it.
            pairs = [(fake_f, real_f) for fake_feats, real_feats in zip(pred_fake, pred_real)
                     for fake_f, real_f in zip(fake_feats[:-1], real_feats[:-1])]
            mean_over = getattr(unwrap(self.netD), "feature_matching_mean", "scales")
            num_D = len(pairs) if mean_over == "features" else len(pred_fake)
            feat_loss = fake_image.new_zeros(())
            for fake_f, real_f in pairs:
                # fp32 loss also when D's features are bf16/fp16 under --amp.
                feat_loss = feat_loss + self.criterionFeat(
                    fake_f.float(), real_f.detach().float()) * self.opt.lambda_feat / num_D
            G_losses["GAN_Feat"] = feat_loss
        if not self.opt.no_vgg_loss:
            G_losses["VGG"] = self.criterionVGG(fake_image, real_image) * self.opt.lambda_vgg
        return G_losses, fake_image

    def compute_discriminator_loss(self, input_semantics, real_image, class_ids=None):
        with torch.no_grad():
            fake_image, _ = self.generate_fake(input_semantics, real_image, class_ids=class_ids)
        # The reference marks this fake as requiring grad; nothing reads that gradient, so it is
        # not computed here (D's weight gradients, the only ones the D step uses, are the same).
        fake_image = fake_image.detach()
        pred_fake, pred_real = self.discriminate(input_semantics, fake_image, real_image)
        return {
            "D_Fake": self.criterionGAN(pred_fake, False, for_discriminator=True),
            "D_real": self.criterionGAN(pred_real, True, for_discriminator=True),
        }

    # ------------------------------------------------------------------ networks
    def encode_z(self, real_image):
        if self.netE is None:
            raise ValueError("mode 'encode' needs the image encoder: train/test with --use_vae")
        mu, logvar = self.netE(real_image)
        return self.reparameterize(mu, logvar), mu, logvar

    @staticmethod
    def reparameterize(mu, logvar):
        std = torch.exp(0.5 * logvar)
        return torch.randn_like(std) * std + mu

    def generate_fake(self, input_semantics, real_image, compute_kld_loss=False, class_ids=None):
        z = None
        KLD_loss = None
        if self.opt.use_vae:
            z, mu, logvar = self.encode_z(real_image)
            if compute_kld_loss:
                KLD_loss = self.KLDLoss(mu, logvar) * self.opt.lambda_kld
        # Under --amp the generator's last conv runs in bf16/fp16; the image itself is handed on as
        # fp32 (losses, D input, saved pictures).
        fake_image = self.netG(input_semantics, z=z, class_ids=class_ids).float()
        return fake_image, KLD_loss

    def discriminate(self, input_semantics, fake_image, real_image):
        """D on fake and real in one pass (one concatenated batch, both paired with the same label
        maps: the D interface of models/networks), split back per scale and layer."""
        images = torch.cat([fake_image, real_image], dim=0)
        out = self.netD(images, input_semantics)
        n = fake_image.size(0)
        pred_fake = [[t[:n] for t in scale] for scale in out]
        pred_real = [[t[n:] for t in scale] for scale in out]
        return pred_fake, pred_real
