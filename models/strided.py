"""Stride-2 convolutions regrouped by 2x2 phase: the same sums in shapes that run faster.

A stride-2 convolution on few channels (g_a's first layer, 3 in) is a stride-1 convolution over
2x2 pixel blocks; a stride-2 transposed convolution to few channels (g_s's last layer, 3 out) is a
stride-1 convolution giving each output's four phases, then pixel_shuffle. oneDNN runs these dense
forms faster than the strided and transposed ones. (The exact h_s does not use the second: its
extra multiply-adds cost more than its col2im saved, docs/performance.md.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kernel_by_phase(weight: torch.Tensor, padding: int) -> torch.Tensor:
    """A stride-2 kernel (A, B, k, k) regrouped as (A, B, 2, 2, 2r+1, 2r+1): tap u of a "same"
    padded convolution lands on phase (u - padding) % 2 and block offset (u - padding) // 2 + r."""
    a, b, k, _ = weight.shape
    reach = (k - padding) // 2
    grid = weight.new_zeros(a, b, 2 * (2 * reach + 1), 2 * (2 * reach + 1))
    start = 2 * reach - padding
    grid[..., start : start + k, start : start + k] = weight
    return grid.reshape(a, b, 2 * reach + 1, 2, 2 * reach + 1, 2).permute(0, 1, 3, 5, 2, 4)


def space_to_depth_conv(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for a stride-2 convolution, as a stride-1 one over x's 2x2 pixel blocks
    (pixel_unshuffle: 3 channels become 12). The same sums, but oneDNN runs 12 dense channels much
    faster than 3 strided ones (g_a's first layer), in bfloat16 most of all."""
    phases = kernel_by_phase(layer.weight, layer.padding[0])
    out_channels, in_channels, _, _, side, _ = phases.shape
    weight = phases.reshape(out_channels, in_channels * 4, side, side)
    blocks = F.pixel_unshuffle(x, 2).contiguous(memory_format=torch.channels_last)
    return F.conv2d(blocks, weight, layer.bias, padding=side // 2)


def depth_to_space_conv(layer: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for a stride-2 transposed convolution (output twice the input's size), as a
    stride-1 convolution giving each output channel's four 2x2 phases, put in place by
    pixel_shuffle. The same sums, but faster in float32 for g_s's last layer (3 channels)."""
    phases = kernel_by_phase(layer.weight, layer.padding[0]).flip(-2, -1)  # block offset d is tap r - d
    in_channels, out_channels, _, _, side, _ = phases.shape
    weight = phases.permute(1, 2, 3, 0, 4, 5).reshape(out_channels * 4, in_channels, side, side)
    out = F.conv2d(x, weight, layer.bias.repeat_interleave(4), padding=side // 2)
    return F.pixel_shuffle(out, 2)
