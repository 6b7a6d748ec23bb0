"""The SPADE / DAGAN training and inference model: networks, input preprocessing and losses.

``model(data, mode)`` with mode 'generator' -> (loss dict, fake), 'discriminator' -> loss dict,
'encode' -> (z, mu, logvar), 'inference' -> fake. The trainer sums the dicts and steps optimisers.
"""

import logging

import torch
import torch.nn as nn

from models import networks, pix2pix_options
from models.networks.normalization import ONEHOT_LABELS_ATTR

logger = logging.getLogger(__name__)

MODES = ("generator", "discriminator", "encode", "inference")


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


class Pix2PixModel(nn.Module):
    """G (+ D, E) and the losses of SPADE, used unchanged by DAGAN.

    Inputs: the data batch dict of the contract ('label' int64 [B,1,H,W], 'instance' int64 [B,1,H,W],
    'image' float [B,3,H,W] in [-1,1], 'label_path' list[str]). Outputs by mode:
    generator -> ({'GAN','GAN_Feat','VGG','KLD'} present ones, fake [B,3,H,W]);
    discriminator -> {'D_Fake','D_real'}; encode -> (z, mu, logvar) [B,z_dim];
    inference -> fake [B,3,H,W] (no_grad; with --use_vae the style comes from data['image']).
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return pix2pix_options.modify_commandline_options(parser, is_train)

    @staticmethod
    def validate_options(opt):
        pix2pix_options.validate_options(opt)

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.device = getattr(opt, "device", None) or torch.device("cpu")
        self.netG = networks.define_G(opt)
        self.netD = networks.define_D(opt) if opt.isTrain else None
        self.netE = networks.define_E(opt) if opt.use_vae else None
        self.model_names = ["G"] + (["D"] if self.netD is not None else []) + (["E"] if self.netE is not None else [])
        if opt.isTrain:
            self.criterionGAN = networks.GANLoss(opt.gan_mode)
            self.criterionFeat = nn.L1Loss()
            if not opt.no_vgg_loss:
                self.criterionVGG = networks.VGGLoss(getattr(opt, "vgg_weights", None))
            if opt.use_vae:
                self.KLDLoss = networks.KLDLoss()
        self.to(self.device)
        # NHWC weights and activations (``--memory_format channels_last``, test.py's default): same
        # images, faster convolutions; state-dict keys and shapes unchanged, checkpoints written contiguous.
        self.memory_format = torch.contiguous_format
        # D takes (label maps, images) and shares the label maps' work between fake and real; False
        # builds the reference's concatenated input instead (same values up to rounding).
        self.d_pair_input = True
        self.set_memory_format(getattr(opt, "memory_format", "contiguous"))

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

    # ------------------------------------------------------------------ entry point
    def forward(self, data, mode):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        input_semantics, real_image = self.preprocess_input(data)
        if mode == "generator":
            return self.compute_generator_loss(input_semantics, real_image)
        if mode == "discriminator":
            return self.compute_discriminator_loss(input_semantics, real_image)
        if mode == "encode":
            return self.encode_z(real_image)
        with torch.no_grad():
            fake_image, _ = self.generate_fake(input_semantics, real_image)
        return fake_image

    def create_optimizers(self, opt):
        """Adam for G (+E) and D. TTUR (default): G lr/2, D lr*2, betas (0, 0.9);
        --no_TTUR: lr and (beta1, beta2) for both. optD is None when not training."""
        G_params = list(self.netG.parameters())
        if self.netE is not None:
            G_params += list(self.netE.parameters())
        if opt.no_TTUR:
            beta1, beta2 = opt.beta1, opt.beta2
            G_lr, D_lr = opt.lr, opt.lr
        else:
            beta1, beta2 = 0.0, 0.9
            G_lr, D_lr = opt.lr / 2, opt.lr * 2
        # torch's fused Adam kernel (CPU and CUDA): one pass per tensor instead of one per operation.
        fused = all(p.dtype == torch.float32 for p in G_params) and self.device.type in ("cpu", "cuda")
        optimizer_G = torch.optim.Adam(G_params, lr=G_lr, betas=(beta1, beta2), fused=fused)
        optimizer_D = None
        if self.netD is not None:
            optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=D_lr, betas=(beta1, beta2), fused=fused)
        return optimizer_G, optimizer_D

    # ------------------------------------------------------------------ input
    def preprocess_input(self, data):
        """-> (input_semantics [B,semantic_nc,H,W] one-hot (+ instance edge map), real image [B,3,H,W])."""
        label_map = data["label"].to(self.device, non_blocking=True).long()
        if label_map.dim() != 4 or label_map.size(1) != 1:
            raise ValueError(f"data['label'] must be [B,1,H,W], got shape {tuple(label_map.shape)}")
        nc = self.opt.label_nc + (1 if self.opt.contain_dontcare_label else 0)
        self._check_label_range(label_map, nc, data)
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
        # The class ids, for SPADE's look-up path (it would otherwise recover them from the map).
        setattr(input_semantics, ONEHOT_LABELS_ATTR, label_map[:, 0])
        real_image = data["image"].to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        return input_semantics, real_image

    @staticmethod
    def _check_label_range(label_map, nc, data):
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

    # ------------------------------------------------------------------ losses
    def compute_generator_loss(self, input_semantics, real_image):
        G_losses = {}
        fake_image, KLD_loss = self.generate_fake(input_semantics, real_image, compute_kld_loss=self.opt.use_vae)
        if KLD_loss is not None:
            G_losses["KLD"] = KLD_loss
        pred_fake, pred_real = self.discriminate(input_semantics, fake_image, real_image)
        G_losses["GAN"] = self.criterionGAN(pred_fake, True, for_discriminator=False)
        if not self.opt.no_ganFeat_loss:
            num_D = len(pred_fake)
            feat_loss = fake_image.new_zeros(())
            for fake_feats, real_feats in zip(pred_fake, pred_real):
                # The last output is the score map (GAN loss); match every layer before it.
                for fake_f, real_f in zip(fake_feats[:-1], real_feats[:-1]):
                    # fp32 loss also when D's features are bf16/fp16 under --amp.
                    feat_loss = feat_loss + self.criterionFeat(
                        fake_f.float(), real_f.detach().float()) * self.opt.lambda_feat / num_D
            G_losses["GAN_Feat"] = feat_loss
        if not self.opt.no_vgg_loss:
            G_losses["VGG"] = self.criterionVGG(fake_image, real_image) * self.opt.lambda_vgg
        return G_losses, fake_image

    def compute_discriminator_loss(self, input_semantics, real_image):
        with torch.no_grad():
            fake_image, _ = self.generate_fake(input_semantics, real_image)
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

    def generate_fake(self, input_semantics, real_image, compute_kld_loss=False):
        z = None
        KLD_loss = None
        if self.opt.use_vae:
            z, mu, logvar = self.encode_z(real_image)
            if compute_kld_loss:
                KLD_loss = self.KLDLoss(mu, logvar) * self.opt.lambda_kld
        # Under --amp the generator's last conv runs in bf16/fp16; the image itself is handed on as
        # fp32 (losses, D input, saved pictures).
        fake_image = self.netG(input_semantics, z=z).float()
        return fake_image, KLD_loss

    def discriminate(self, input_semantics, fake_image, real_image):
        """D on fake and real in one pass (one concatenated batch), split back per scale and layer.
        D gets the (label maps, images) pair whose channel concatenation is the reference's input
        (see MultiscaleDiscriminator.forward)."""
        images = torch.cat([fake_image, real_image], dim=0)
        if self.d_pair_input:
            out = self.netD((input_semantics, images))
        else:  # the reference's input, built in full (kept for the benchmark's reference computation)
            out = self.netD(torch.cat([input_semantics.repeat(2, 1, 1, 1).to(images.dtype), images], dim=1))
        n = fake_image.size(0)
        pred_fake = [[t[:n] for t in scale] for scale in out]
        pred_real = [[t[n:] for t in scale] for scale in out]
        return pred_fake, pred_real
