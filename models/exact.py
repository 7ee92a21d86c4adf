"""Integer-exact evaluation of the hyper-synthesis transform h_s.

The entropy decoder chooses each symbol's distribution from the scales (and means) that h_s computes
from the decoded z. If the decoder's float arithmetic differs from the encoder's in the last bit
(thread count, BLAS build, summation order, CPU vs GPU), a scale can cross a boundary of the CDF
table and the rest of the stream decodes into garbage. Here h_s runs on a fixed-point grid instead:
weights are rounded to multiples of 2^-16 and activations to multiples of 2^-12, so every
convolution adds integers, in float64, whose partial sums stay below 2^53: each sum is exact in any
order. Rounding back onto the grid (an exact division by a power of two, then round-half-even), ReLU
and LeakyReLU (one correctly rounded IEEE multiply) are deterministic too, so every machine computes
the same scales and means, to the bit.

The attention blocks (softmax, tanh, sigmoid) have no exact form: they are evaluated in float32 and
rounded back onto the grid, which makes a mismatch unlikely but not impossible. Only models whose h_s
has none (hyper_attention "none", or blocks in h_a alone: hyper_attention_in "h_a") are bit-exact
everywhere. (What "exact arithmetic" means across the codec: docs/glossary.md.)
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION_BITS = 12
WEIGHT_BITS = 16
EXACT_LIMIT = 2.0**52  # integers up to 2^53 are exact in float64; keep a factor of 2 to spare


# layer -> (its parameters' addresses and versions, (grid weight, grid bias, input bound))
_GRID_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _grid_parameters(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The layer's weight and bias as grid integers, and the input bound that keeps its sums exact.
    Preparing them is a good part of h_s's time, so they are kept until the parameters change: any
    in-place update (a training step, load_state_dict) moves a tensor's version counter."""
    tracked = not (torch.is_inference(layer.weight) or torch.is_inference(layer.bias))
    key = (layer.weight.data_ptr(), layer.weight._version, layer.bias.data_ptr(), layer.bias._version) if tracked else None
    cached = _GRID_CACHE.get(layer)
    if key is not None and cached is not None and cached[0] == key:
        return cached[1]
    weight = torch.round(layer.weight.detach().double() * 2.0**WEIGHT_BITS)
    bias = torch.round(layer.bias.detach().double() * 2.0 ** (WEIGHT_BITS + ACTIVATION_BITS))
    # Bound the inputs so that |sum| <= max_out sum|w| * |h| + |b| stays exact, whatever z says.
    weight_mass = weight.abs().sum(dim=(0, 2, 3) if isinstance(layer, nn.ConvTranspose2d) else tuple(range(1, weight.dim()))).max().item()
    limit = math.floor((EXACT_LIMIT - bias.abs().max().item()) / max(weight_mass, 1.0))
    if key is not None:
        _GRID_CACHE[layer] = key, (weight, bias, limit)
    return weight, bias, limit


def _exact_conv(layer: nn.Conv2d | nn.ConvTranspose2d, h: torch.Tensor) -> torch.Tensor:
    """One convolution on grid integers, exactly, back on the activation grid."""
    weight, bias, limit = _grid_parameters(layer)
    h.clamp_(-limit, limit)
    if isinstance(layer, nn.ConvTranspose2d):
        out = _transposed_conv(h, weight, layer.stride, layer.padding, layer.output_padding)
    else:
        out = _conv(h, weight, layer.stride, layer.padding)
    return out.add_(bias.view(1, -1, 1, 1)).div_(2.0**WEIGHT_BITS).round_()


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b: the exact path's matrix products, in one place.

    The determinism checks replace it to sum in another order (codec/summation.py).

    Args:
        a: (P, K) float64 grid integers.
        b: (K, Q) float64 grid integers.

    Returns:
        Tensor: (P, Q) float64, exact.
    """
    return a @ b


def _conv(h: torch.Tensor, weight: torch.Tensor, stride, padding) -> torch.Tensor:
    """A convolution as one matrix product over all positions of all images: float64 convolutions
    loop over the batch, which is slow for the many small blocks of a block-wise hyperprior."""
    n, _, height, width = h.shape
    out_channels, _, kh, kw = weight.shape
    out_h = (height + 2 * padding[0] - kh) // stride[0] + 1
    out_w = (width + 2 * padding[1] - kw) // stride[1] + 1
    columns = F.unfold(h, (kh, kw), padding=padding, stride=stride).transpose(1, 2).reshape(n * out_h * out_w, -1)
    out = matmul(columns, weight.reshape(out_channels, -1).t())
    return out.reshape(n, out_h, out_w, out_channels).permute(0, 3, 1, 2)


def _transposed_conv(h: torch.Tensor, weight: torch.Tensor, stride, padding, output_padding) -> torch.Tensor:
    """A transposed convolution as one matrix product (each input value times every kernel tap),
    then the overlapping taps summed into place (col2im)."""
    n, in_channels, height, width = h.shape
    _, out_channels, kh, kw = weight.shape
    out_h = (height - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    out_w = (width - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    taps = matmul(h.permute(0, 2, 3, 1).reshape(-1, in_channels), weight.reshape(in_channels, -1))
    taps = taps.reshape(n, height * width, -1).transpose(1, 2)
    return F.fold(taps, (out_h, out_w), (kh, kw), padding=padding, stride=stride)


def exact_forward(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """layers(x) computed on the fixed-point grid, the same on every machine.

    Operations run in place where they can: float64 maps at full latent resolution are large.

    Args:
        layers: convolutions, transposed convolutions, ReLU, LeakyReLU, Identity and attention
            blocks (the last in float32, not exact).
        x: (N, C, H, W) float tensor (z_hat for h_s).

    Returns:
        Tensor: layers(x), float32, contiguous, every value a multiple of 2^-12.
    """
    scale = 2.0**ACTIVATION_BITS
    h = x.detach().to(torch.float64, copy=True).mul_(scale).round_()
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            h = _exact_conv(layer, h)
        elif isinstance(layer, nn.ReLU):
            h.clamp_min_(0)
        elif isinstance(layer, nn.LeakyReLU):  # max(h, round(slope * h)) is LeakyReLU on integers
            torch.maximum(h, torch.round(h * layer.negative_slope), out=h)
        elif not isinstance(layer, nn.Identity):  # an attention block: float32, then back on the grid
            h = layer((h / scale).float()).double().mul_(scale).round_()
    return h.div_(scale).to(torch.float32, memory_format=torch.contiguous_format)


def exact_conv_at(layer: nn.Module, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A stride-1 convolution of x on the grid, as exact_forward computes one, at some outputs only.

    For the checkerboard context: its layer's weight holds only some taps of its kernel, and only
    the latents that are not checkerboard anchors need it.

    Args:
        layer: a module with `weight` (out, in, len(layer.taps)) and `bias` (out,), `taps` (flat
            indexes into its kernel_size x kernel_size kernel) and an odd int `kernel_size`; the
            padding keeps the size.
        x: (N, in, H, W) float tensor.
        positions: (P,) int64 flat indexes into the H x W output.

    Returns:
        Tensor: (N, out, P) float32, multiples of 2^-12.
    """
    scale = 2.0**ACTIVATION_BITS
    weight, bias, limit = _grid_parameters(layer)
    h = x.detach().to(torch.float64, copy=True).mul_(scale).round_().clamp_(-limit, limit)
    n, channels = h.shape[:2]
    size = layer.kernel_size
    columns = F.unfold(h, size, padding=size // 2).view(n, channels, size * size, -1)
    columns = columns[:, :, layer.taps][..., positions].permute(0, 3, 1, 2).reshape(n * len(positions), -1)
    out = matmul(columns, weight.reshape(weight.shape[0], -1).t())
    out = out.add_(bias).div_(2.0**WEIGHT_BITS).round_().div_(scale)
    return out.reshape(n, len(positions), -1).transpose(1, 2).float()
