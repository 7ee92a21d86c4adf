"""Building blocks of the transforms: GDN and the hyperprior's attention/normalization blocks.

Every block is channels-first, (N, C, H, W), and preserves the shape of its input. Each hyperprior
block's `make_neutral()` sets its parameters so that it multiplies its input by a constant, and
returns the constant: a trained model that gains a block then computes what it did without it, once
the next convolution's weights are divided by that constant (codec.training.start.load_init).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import compressai.layers
from torch import nn

__all__ = [
    "GDN",
    "GlobalResponseNorm",
    "GatedChannelTransform",
    "SpatialGroupEnhance",
    "GlobalContext",
    "HYPER_ATTENTION",
    "make_hyper_attention",
]

class GDN(compressai.layers.GDN):
    """GDN / inverse GDN (Ballé et al. 2016), with an in-place forward when no gradient is needed.

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2), and x_i * sqrt(...) for the inverse.
    CompressAI's layer has exactly the seed's parametrization (beta and gamma stored as
    sqrt(value + pedestal), lower-bounded with a gradient that passes when the input is at or above
    the bound or the gradient pushes it up), so training uses it as is; tests check it against the
    formula. Without autograd (coding) the same arithmetic runs in place: two feature maps live
    instead of four, which at full resolution saves both memory and time.

    Args:
        in_channels: C, the number of channels.
        inverse: the inverse GDN (IGDN) of the synthesis transform.
        beta_min, gamma_init: CompressAI's.

    Shape:
        (N, C, H, W) float -> (N, C, H, W), the input's dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        channels = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(channels, channels, 1, 1)
        norm = F.conv2d(x.square(), gamma, beta)
        return (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(x)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN: rescale each channel by its spatial L2 energy relative to the channels' mean.

    out = x + bias + weight * x * (||x_c||_2 / (mean_c ||x_c||_2 + eps)); the identity at init.

    Args:
        channels: C.
        eps: added to the mean energy.

    Shape:
        (N, C, H, W) float -> (N, C, H, W).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True)
        relative = energy / (energy.mean(dim=1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias, self.weight, x * relative)

    def make_neutral(self) -> float:
        """The identity (see the module's docstring)."""
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        return 1.0


class GatedChannelTransform(nn.Module):
    """GCT (Yang et al. 2020): a channel gate 1 + tanh(gamma * normalized embedding + beta).

    The embedding is alpha times the channel's spatial L2 norm, normalized across channels.
    The identity at init (gamma = beta = 0).

    Args:
        channels: C.
        eps: added under each square root.

    Shape:
        (N, C, H, W) float -> (N, C, H, W).
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = (x.pow(2).sum((2, 3), keepdim=True) + self.eps).sqrt() * self.alpha
        norm = self.gamma / (embedding.pow(2).mean(dim=1, keepdim=True) + self.eps).sqrt()
        return x * (1.0 + torch.tanh(embedding * norm + self.beta))

    def make_neutral(self) -> float:
        """The identity (see the module's docstring)."""
        nn.init.zeros_(self.gamma)
        nn.init.zeros_(self.beta)
        return 1.0


class SpatialGroupEnhance(nn.Module):
    """SGE (Li et al. 2019): a spatial gate per channel group.

    The gate is the similarity of each position to the group's mean feature, standardized over
    positions, then an affine map and a sigmoid.

    Args:
        channels: C, a multiple of `groups`.
        groups: the number of channel groups, each with its own gate.
        eps: added to the standard deviation.

    Shape:
        (N, C, H, W) float -> (N, C, H, W).
    """

    def __init__(self, channels: int, groups: int = 8, eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ValueError(f"SGE needs channels ({channels}) divisible by groups ({groups})")
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, groups, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        grouped = x.reshape(n * self.groups, c // self.groups, h, w)
        similarity = (grouped * grouped.mean(dim=(2, 3), keepdim=True)).sum(dim=1)
        similarity = similarity.reshape(n, self.groups, h * w)
        similarity = similarity - similarity.mean(dim=2, keepdim=True)
        similarity = similarity / (similarity.std(dim=2, keepdim=True) + self.eps)
        gate = similarity.reshape(n, self.groups, h, w) * self.weight + self.bias
        gate = torch.sigmoid(gate).reshape(n * self.groups, 1, h, w)
        return (grouped * gate).reshape(n, c, h, w)

    def make_neutral(self) -> float:
        """A gate of sigmoid(0) = 1/2 everywhere (see the module's docstring)."""
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        return 0.5


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first tensor, at each position.

    Args:
        normalized_shape: C (nn.LayerNorm's arguments).

    Shape:
        (N, C, H, W) float -> (N, C, H, W).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ContextMlp(nn.Sequential):
    """GCNet's bottleneck transform of the pooled context: 1x1 conv, LayerNorm, ReLU, 1x1 conv.

    Args:
        channels: C, in and out.
        hidden: the bottleneck's width.

    Shape:
        (N, C, 1, 1) float -> (N, C, 1, 1).
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__(
            nn.Conv2d(channels, hidden, 1),
            LayerNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )


class GlobalContext(nn.Module):
    """GCNet's global context block (Cao et al. 2019), fused by a sigmoid scale.

    Softmax attention pooling over positions gives one context vector per image, which a bottleneck
    MLP turns into a per-channel scale sigmoid(.) applied at every position.

    Args:
        channels: C.
        reduction: the MLP's bottleneck is C // reduction wide (at least 1).

    Shape:
        (N, C, H, W) float -> (N, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.attention = nn.Conv2d(channels, 1, 1)
        nn.init.kaiming_normal_(self.attention.weight, mode="fan_in", nonlinearity="relu")
        self.scale_mlp = ContextMlp(channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(self.attention(x).reshape(n, 1, h * w), dim=-1)
        context = torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2)).reshape(n, c, 1, 1)
        return x * torch.sigmoid(self.scale_mlp(context))

    def make_neutral(self) -> float:
        """The context's last layer at zero: a scale of sigmoid(0) = 1/2 (see the module's docstring)."""
        nn.init.zeros_(self.scale_mlp[-1].weight)
        nn.init.zeros_(self.scale_mlp[-1].bias)
        return 0.5


HYPER_ATTENTION = {
    "none": None,
    "grn": GlobalResponseNorm,
    "gc": GlobalContext,
    "sge": SpatialGroupEnhance,
    "gct": GatedChannelTransform,
}


def make_hyper_attention(name: str, channels: int) -> nn.Module:
    """The hyperprior block named by a model's `hyper_attention` option.

    Args:
        name: a key of HYPER_ATTENTION ("none", "grn", "gc", "sge", "gct").
        channels: the channels of the maps it will see.

    Returns:
        nn.Module: the block with its default settings; nn.Identity for "none".

    Raises:
        ValueError: for an unknown name.
    """
    if name not in HYPER_ATTENTION:
        raise ValueError(f"unknown hyper_attention {name!r}; choose from {', '.join(HYPER_ATTENTION)}")
    block = HYPER_ATTENTION[name]
    return nn.Identity() if block is None else block(channels)

