"""Spectral normalisation: the fast variant used by the networks, and torch's plain one as reference.

Both give W_sn = W / sigma(W), sigma estimated by one power-iteration step per training forward, and
both store ``weight_orig`` (parameter), ``weight_u`` and ``weight_v`` (buffers): the key layout of the
official SPADE / DAGAN checkpoints (see ``checkpoint_layout/``). That is why the old-style
``torch.nn.utils.spectral_norm`` is used and not the parametrization-based variant, whose keys differ
and would make official files fail to load with ``strict=True``.

* fast: :func:`spectral_norm` (module -> the same module, spectrally normalised; a plain ``nn.Conv2d``
  becomes an :class:`SNConv2d`, the hook a :class:`FP32SpectralNorm`);
* reference: :func:`reference_spectral_norm` = ``torch.nn.utils.spectral_norm``.

A built layer is switched between the two, sharing its parameters and buffers, by
``ops.to_reference(net, kinds=("spectral_norm",))`` / ``ops.to_fast`` (see ``ops/reference.py``).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as _torch_spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm

__all__ = ["FP32SpectralNorm", "SNConv2d", "SpectralNorm", "reference_spectral_norm", "spectral_norm"]


class FP32SpectralNorm(SpectralNorm):
    """torch's spectral-norm hook (same buffers, state-dict keys and hooks) with three changes that
    leave the normalised weight W / sigma the same up to float rounding:

    * the power iteration and sigma run outside autocast: under CUDA fp16 ``torch.mv`` / ``torch.dot``
      would run in half precision and sigma (the scale of every normalised weight) would carry fp16
      rounding; ``weight_u`` / ``weight_v`` stay fp32 for checkpoints. The convolution is autocast;
    * inference (eval mode, no grad) caches W / sigma until the weight or u, v change;
    * on an :class:`SNConv2d` whose output is smaller than its weight (1024-channel layers on a
      small grid), the division moves to the output: conv(x, W) / sigma + b is conv(x, W / sigma) + b
      without dividing (and differentiating) the whole weight at every forward.
    """

    def __call__(self, module, inputs):
        weight = getattr(module, self.name + "_orig")
        module.__dict__.pop("_sn_sigma", None)
        if not module.training and not torch.is_grad_enabled():
            # Inference: W / sigma is the same tensor at every call until the weight or the power
            # iteration vectors change (optimizer step, state-dict load), which bumps their versions.
            u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
            key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in (weight, u, v))
            cached = module.__dict__.get("_sn_eval_cache")
            if cached is None or cached[0] != key:
                with torch.autocast(device_type=weight.device.type, enabled=False):
                    super().__call__(module, inputs)
                module.__dict__["_sn_eval_cache"] = (key, getattr(module, self.name))
            else:
                setattr(module, self.name, cached[1])
            return
        module.__dict__.pop("_sn_eval_cache", None)
        with torch.autocast(device_type=weight.device.type, enabled=False):
            if isinstance(module, SNConv2d) and self.name == "weight" and module.scales_output(inputs[0]):
                # The conv uses W itself (a view: not a Parameter, so not re-registered) and divides
                # its output by sigma (SNConv2d.forward).
                module.__dict__["_sn_sigma"] = self.sigma(module, do_power_iteration=module.training)
                setattr(module, self.name, weight.view_as(weight))
            else:
                super().__call__(module, inputs)

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        return weight / self.sigma(module, do_power_iteration)

    def sigma(self, module, do_power_iteration):
        """sigma = u^T W v after the power iteration (u, v updated in place, as torch does). For a
        channels-last conv weight the matrix is taken in the weight's own memory order, columns
        (kh, kw, in) instead of (in, kh, kw): a view instead of a copy of the whole weight. A column
        permutation leaves sigma unchanged; ``v`` is stored in torch's (official) order."""
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        channels_last = (self.dim == 0 and weight.dim() == 4 and not weight.is_contiguous()
                         and weight.is_contiguous(memory_format=torch.channels_last))
        if channels_last:
            out_c, in_c, kh, kw = weight.shape
            weight_mat = weight.permute(0, 2, 3, 1).reshape(out_c, -1)  # a view: memory order
            v_used = v.view(in_c, kh, kw).permute(1, 2, 0).reshape(-1)
        else:
            weight_mat = self.reshape_weight_to_matrix(weight)
            v_used = v
        if do_power_iteration:
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    v_used = F.normalize(torch.mv(weight_mat.t(), u), dim=0, eps=self.eps,
                                         out=None if channels_last else v)
                    u = F.normalize(torch.mv(weight_mat, v_used), dim=0, eps=self.eps, out=u)
                if self.n_power_iterations > 0:
                    if channels_last:  # back to torch's order, in place (buffers shared with replicas)
                        v.copy_(v_used.view(kh, kw, in_c).permute(2, 0, 1).reshape(-1))
                    # Cloned, as torch does: a later forward's in-place update must not touch this
                    # graph's u and v.
                    u = u.clone(memory_format=torch.contiguous_format)
                    v_used = v_used.clone(memory_format=torch.contiguous_format)
        return torch.dot(u, torch.mv(weight_mat, v_used))


class SNConv2d(nn.Conv2d):
    """The Conv2d that :func:`spectral_norm` returns: same parameters and keys; when the hook has
    left ``_sn_sigma`` (see :class:`FP32SpectralNorm`) the output, not the weight, is divided.
    ``forward(x [B,in,H,W]) -> [B,out,h,w]`` as ``nn.Conv2d``."""

    def scales_output(self, x):
        """True when dividing this call's output is cheaper than dividing the weight: one sample's
        output smaller than the weight. Per sample, so that the choice (and the rounding) does not
        depend on how a batch is split across DDP ranks."""
        if x.dim() != 4 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return False
        out_hw = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in
                  zip(x.shape[2:], self.padding, self.dilation, self.kernel_size, self.stride)]
        return self.out_channels * out_hw[0] * out_hw[1] < self.weight_orig.numel()

    def forward(self, x):
        sigma = self.__dict__.pop("_sn_sigma", None)
        if sigma is None:
            return super().forward(x)
        out = self._conv_forward(x, self.weight, None) / sigma  # a 0-dim fp32 sigma keeps out's dtype
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        return out


def spectral_norm(module, name="weight"):
    """Fast: ``torch.nn.utils.spectral_norm`` (official key layout: weight_orig, weight_u, weight_v)
    with the hook of :class:`FP32SpectralNorm`; a plain ``nn.Conv2d`` becomes an :class:`SNConv2d`.
    Returns ``module`` (modified in place)."""
    module = _torch_spectral_norm(module, name=name)
    for hook in module._forward_pre_hooks.values():
        if type(hook) is SpectralNorm and hook.name == name:
            hook.__class__ = FP32SpectralNorm
    if type(module) is nn.Conv2d:
        module.__class__ = SNConv2d
    return module


def reference_spectral_norm(module, name="weight"):
    """Reference: torch's own ``torch.nn.utils.spectral_norm`` (same parameters, buffers and keys)."""
    return _torch_spectral_norm(module, name=name)
