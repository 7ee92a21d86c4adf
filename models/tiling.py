"""Run a convolutional transform over a large image tile by tile, with the result of one piece.

Each tile is extended by a halo of its neighbours' input, transformed, and only its core is kept.
A halo at least as wide as the transform's reach (how far an output looks into its input) makes
every kept value depend only on real input, exactly as in the whole-image pass, so tiles leave no
seams: only the summation order of the convolutions may change, in the last bits of a float.
Memory then grows with the tile, not with the image (how the process's heap gives freed memory back
is the caller's choice: codec.allocator.bounded_heap). At the image border the halo is cut off and
the convolutions zero-pad there, as the whole-image pass does. (Tiles, halos and the hyperprior's
blocks: docs/glossary.md.)
"""

from __future__ import annotations

from typing import Callable

import torch


def tiled(transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float, tile: int, halo: int,
          whole: int) -> torch.Tensor:
    """transform(x), computed tile by tile when x is large, with the values of one piece.

    Args:
        transform: maps (N, C, h, w) to (N, C', h * scale, w * scale).
        x: (N, C, H, W) tensor.
        scale: the transform's output size over its input size (1/16 for an analysis transform, 16
            for a synthesis one).
        tile: the side of a tile's core, in input samples. For scale < 1, tile and halo must be
            multiples of 1/scale, so that each tile starts on the transform's stride grid.
        halo: input samples added on each side of a tile, at least the transform's reach.
        whole: an input of at most this many samples (H * W) runs in one piece, which is fastest.

    Returns:
        Tensor: (N, C', H * scale, W * scale), in the dtype, device and layout (channels-first or
        -last) that the transform gives.
    """
    height, width = x.shape[-2:]
    if height * width <= whole:
        return transform(x)
    result = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            y0, x0 = max(top - halo, 0), max(left - halo, 0)
            bottom, right = min(top + tile, height), min(left + tile, width)
            out = transform(x[..., y0 : min(bottom + halo, height), x0 : min(right + halo, width)])
            if result is None:
                layout = torch.channels_last if out.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
                size = (x.shape[0], out.shape[1], int(height * scale), int(width * scale))
                result = torch.empty(size, dtype=out.dtype, device=out.device, memory_format=layout)
            core = out[..., int((top - y0) * scale) : int((bottom - y0) * scale), int((left - x0) * scale) : int((right - x0) * scale)]
            result[..., int(top * scale) : int(bottom * scale), int(left * scale) : int(right * scale)] = core
            del out, core
    return result


def blockwise(transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, block: int, out_block: int,
              chunk: int | None = None) -> torch.Tensor:
    """transform applied to each square block of x on its own, as a batch, the outputs put back in place.

    Each block is zero-padded at its edge, as when the model trained on crops of one block: this is
    the block-wise hyperprior, part of the model (not a tiling).

    Args:
        transform: maps (B, C, block, block) to (B, C', out_block, out_block).
        x: (N, C, H, W) tensor, H and W multiples of `block`.
        block: the side of a block, in x's samples.
        out_block: the side of a block's output.
        chunk: that many blocks at a time (memory then follows the chunk); None: all at once.

    Returns:
        Tensor: (N, C', H / block * out_block, W / block * out_block).
    """
    n, channels, height, width = x.shape
    rows, cols = height // block, width // block
    blocks = x.reshape(n, channels, rows, block, cols, block).permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, block, block)
    chunk = chunk or len(blocks)
    outs = [transform(blocks[start : start + chunk]) for start in range(0, len(blocks), chunk)]
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    del outs
    out = out.reshape(n, rows, cols, -1, out_block, out_block).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(n, out.shape[1], rows * out_block, cols * out_block)
