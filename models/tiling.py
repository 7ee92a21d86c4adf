"""Run a convolutional transform over a large image tile by tile, with the result of one piece.

Each tile is extended by a halo of its neighbours' input, transformed, and only its core is kept.
A halo at least as wide as the transform's reach (how far an output looks into its input) makes
every kept value depend only on real input, exactly as in the whole-image pass, so tiles leave no
seams: only the summation order of the convolutions may change, in the last bits of a float.
Memory then grows with the tile, not with the image (how the process's heap gives freed memory back
is the caller's choice: codec.allocator.bounded_heap). At the image border the halo is cut off and
the convolutions zero-pad there, as the whole-image pass does.
"""

from __future__ import annotations

from typing import Callable

import torch


def tiled(transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float, tile: int, halo: int,
          whole: int) -> torch.Tensor:
    """transform(x) for a transform whose output is `scale` times the input's size (1/16 for an
    analysis transform, 16 for a synthesis one), computed on tiles of `tile` input samples per side
    plus `halo` on each side. For scale < 1, tile and halo must be multiples of 1/scale, so that
    each tile starts on the transform's stride grid. An input of at most `whole` samples (height
times width) runs in one piece, which is fastest.
    The result keeps the layout (channels-first or -last) that the transform gives."""
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
    """transform applied to each `block` x `block` square of x on its own, as a batch (zero-padded at
    every block's edge, as when it was trained on crops of one block), its `out_block`-sided outputs
    put back in place. With `chunk`, that many blocks at a time: memory then follows the chunk."""
    n, channels, height, width = x.shape
    rows, cols = height // block, width // block
    blocks = x.reshape(n, channels, rows, block, cols, block).permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, block, block)
    chunk = chunk or len(blocks)
    outs = [transform(blocks[start : start + chunk]) for start in range(0, len(blocks), chunk)]
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    del outs
    out = out.reshape(n, rows, cols, -1, out_block, out_block).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(n, out.shape[1], rows * out_block, cols * out_block)
