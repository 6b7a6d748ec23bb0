"""AttentionGAN (Tang et al.; the official code's root version, ``models/attention_gan_model.py`` of
Ha0Tang/AttentionGAN) as a model of the framework: ``--model attention_gan``, unpaired translation.

Networks ``G_A`` (A->B), ``G_B`` (B->A): the attention-guided generator (``models/networks/
attention_gan.py``); ``D_A`` (judges B images), ``D_B`` (judges A images): PatchGANs. Weight files
``<epoch>_net_G_A.pth`` ... as the official ones. One iteration, as the official trainer:

* generator phase (D_A, D_B frozen): fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B),
  rec_B = G_A(fake_A), identity G_A(B), G_B(A); loss = G_A + G_B + cycle_A + cycle_B + idt_A + idt_B
  with LSGAN (MSE to 1), L1 cycle x lambda_A / lambda_B, L1 identity x lambda_B*lambda_identity /
  lambda_A*lambda_identity;
* discriminator phase: D_A on real B and on a fake B from the image pool (the fakes of this
  iteration's generator phase, before its step), (real + fake) / 2; D_B likewise with A.

Adam (lr, (beta1, 0.999)) over G_A+G_B and over D_A+D_B; lr constant for --niter epochs, then
linearly to 0 over --niter_decay (CycleGAN's rule: epoch k uses lr * (1 - max(0, k - niter) /
(niter_decay + 1))); init N(0, 0.02).
"""

import random

import torch
import torch.nn.functional as F

from models import attention_gan_options
from models.base_model import BaseModel, Phase
from models.networks import init_weights
from models.networks.attention_gan import AttentionGANGenerator, define_discriminator


class ImagePool:
    """CycleGAN's history of generated images (``--pool_size``). ``query(images [B,...])`` returns a
    batch of the same size: while the pool fills, the images themselves (stored); then, per image,
    with probability 1/2 a stored one (replaced by the new one) and otherwise the new image. Python's
    ``random`` draws, as the official code (the full-state checkpoint keeps its state)."""

    def __init__(self, size):
        self.size = int(size)
        self.images = []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                k = random.randint(0, self.size - 1)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self):
        return {"images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state, device):
        self.images = [t.to(device) for t in state.get("images", [])]


def gan_loss(prediction, target_is_real, mode):
    """CycleGAN's GANLoss: lsgan = MSE to 1 / 0, vanilla = BCE with logits."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if mode == "lsgan":
        return F.mse_loss(prediction, target)
    return F.binary_cross_entropy_with_logits(prediction, target)


def cyclegan_lr_factor(opt, epoch):
    """Factor of --lr in ``epoch`` (1-based): 1 for the first --niter epochs, then linear decay."""
    return 1.0 - max(0, epoch - opt.niter) / float(opt.niter_decay + 1)


class AttentionGANModel(BaseModel):
    """Data: the batch dict of the unaligned datasets ('A', 'B' [B,3,H,W] in [-1,1], 'A_paths',
    'B_paths', 'path'). Losses (log order): D_A, G_A, cycle_A, idt_A, D_B, G_B, cycle_B, idt_B.
    Visuals: real_A, fake_B, rec_A, real_B, fake_A, rec_B (+ idt_B, idt_A in training) and the
    background masks; with ``extras`` 'attention_B' [B,10,1,H,W] (G_A's masks), 'content_B' [B,9,3,H,W]
    (its content images) and likewise 'attention_A', 'content_A' for G_B."""

    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
    evaluation_pair = ("real_B", "fake_B")
    ema_network_names = ("G_A", "G_B")
    ema_after_phase = "generator"
    image_rounding = "truncate"  # PNGs as the official code writes them: uint8((x + 1) / 2 * 255)
    default_dataset_mode = "synthetic_unpaired"
    label_input = False  # translates photos
    default_name = "synthetic_attention_gan"

    modify_commandline_options = staticmethod(attention_gan_options.modify_commandline_options)
    validate_options = staticmethod(attention_gan_options.validate_options)

    def __init__(self, opt):
        super().__init__(opt)
        single = not opt.isTrain and opt.single_generator
        self.netG_A = self._init(AttentionGANGenerator(opt.ngf))
        self.netG_B = None if single else self._init(AttentionGANGenerator(opt.ngf))
        self.netD_A = self._init(define_discriminator(opt)) if opt.isTrain else None
        self.netD_B = self._init(define_discriminator(opt)) if opt.isTrain else None
        self.network_names = tuple(n for n in ("G_A", "G_B", "D_A", "D_B") if getattr(self, "net" + n) is not None)
        self.inference_network_names = ("G_A",) if single else ("G_A", "G_B")
        self.extra_visual_names = (("attention_B", "content_B") if single else
                                   ("attention_B", "content_B", "attention_A", "content_A"))
        if opt.isTrain:
            self.fake_A_pool = ImagePool(opt.pool_size)
            self.fake_B_pool = ImagePool(opt.pool_size)
        self._fakes = None
        self._visuals = {}

    def _init(self, net):
        return init_weights(net, self.opt.init_type, self.opt.init_gain).to(self.device)

    # ------------------------------------------------------------------ the contract
    def create_optimizers(self):
        betas = (self.opt.beta1, 0.999)
        G = list(self.netG_A.parameters()) + list(self.netG_B.parameters())
        D = list(self.netD_A.parameters()) + list(self.netD_B.parameters())
        return {"G": torch.optim.Adam(G, lr=self.opt.lr, betas=betas),
                "D": torch.optim.Adam(D, lr=self.opt.lr, betas=betas)}

    def learning_rates(self, epoch):
        lr = self.opt.lr * cyclegan_lr_factor(self.opt, epoch)
        return {"G": lr, "D": lr}

    def training_phases(self):
        return [Phase("generator", optimizer="G", frozen=("D_A", "D_B")), Phase("discriminator", optimizer="D")]

    def compute_losses(self, phase, data):
        real_A, real_B = self._inputs(data)
        opt = self.opt
        if phase == "generator":
            fake_B, extras_B = self.netG_A.forward_with_attention(real_A)
            rec_A = self.netG_B(fake_B)
            fake_A, extras_A = self.netG_B.forward_with_attention(real_B)
            rec_B = self.netG_A(fake_A)
            losses = {"G_A": gan_loss(self.netD_A(fake_B), True, opt.gan_mode),
                      "G_B": gan_loss(self.netD_B(fake_A), True, opt.gan_mode),
                      "cycle_A": F.l1_loss(rec_A, real_A) * opt.lambda_A,
                      "cycle_B": F.l1_loss(rec_B, real_B) * opt.lambda_B}
            visuals = {"real_A": real_A, "fake_B": fake_B, "rec_A": rec_A, "real_B": real_B, "fake_A": fake_A,
                       "rec_B": rec_B}
            if opt.lambda_identity > 0:
                idt_A, idt_B = self.netG_A(real_B), self.netG_B(real_A)
                losses["idt_A"] = F.l1_loss(idt_A, real_B) * opt.lambda_B * opt.lambda_identity
                losses["idt_B"] = F.l1_loss(idt_B, real_A) * opt.lambda_A * opt.lambda_identity
                visuals.update(idt_B=idt_B, idt_A=idt_A)
            visuals.update(background_B=extras_B["attention"][:, -1], background_A=extras_A["attention"][:, -1])
            self._visuals = {k: v.detach() for k, v in visuals.items()}
            self._fakes = (fake_A.detach(), fake_B.detach())
            return losses
        if phase == "discriminator":
            if self._fakes is None:
                raise RuntimeError("the discriminator phase needs the fakes of a generator phase first")
            fake_A, fake_B = self._fakes
            fake_B = self.fake_B_pool.query(fake_B)
            fake_A = self.fake_A_pool.query(fake_A)
            loss_D_A = (gan_loss(self.netD_A(real_B), True, opt.gan_mode)
                        + gan_loss(self.netD_A(fake_B), False, opt.gan_mode)) * 0.5
            loss_D_B = (gan_loss(self.netD_B(real_A), True, opt.gan_mode)
                        + gan_loss(self.netD_B(fake_A), False, opt.gan_mode)) * 0.5
            return {"D_A": loss_D_A, "D_B": loss_D_B}
        raise ValueError(f"unknown phase {phase!r}; known: generator, discriminator")

    def network_inputs(self, name, data):
        real_A, real_B = self._inputs(data)
        return (real_A,) if name == "G_A" else (real_B,)

    def extra_state_dict(self):
        if not self.opt.isTrain:
            return {}
        return {"fake_A_pool": self.fake_A_pool.state_dict(), "fake_B_pool": self.fake_B_pool.state_dict()}

    def load_extra_state_dict(self, state):
        if self.opt.isTrain and state:
            self.fake_A_pool.load_state_dict(state.get("fake_A_pool", {}), self.device)
            self.fake_B_pool.load_state_dict(state.get("fake_B_pool", {}), self.device)

    @torch.no_grad()
    def inference(self, data, extras=False):
        """{'real_A', 'fake_B', 'rec_A', 'real_B', 'fake_A', 'rec_B'} (only the first two with
        --single_generator); with ``extras`` the masks and content images of each translation."""
        real_A, real_B = self._inputs(data)
        fake_B, parts_B = self.netG_A.forward_with_attention(real_A)
        out = {"real_A": real_A, "fake_B": fake_B}
        if self.netG_B is not None:
            fake_A, parts_A = self.netG_B.forward_with_attention(real_B)
            out.update(rec_A=self.netG_B(fake_B), real_B=real_B, fake_A=fake_A, rec_B=self.netG_A(fake_A))
        if extras:
            out.update(attention_B=parts_B["attention"], content_B=parts_B["content"])
            if self.netG_B is not None:
                out.update(attention_A=parts_A["attention"], content_A=parts_A["content"])
        return out

    def _inputs(self, data):
        real_A = data["A"].to(self.device, non_blocking=True)
        real_B = data["B"].to(self.device, non_blocking=True) if "B" in data else None
        return real_A, real_B
