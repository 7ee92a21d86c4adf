"""How the models code on this machine: the deployment side, kept out of their definitions.

models/architectures.py says what a model computes; in eval mode (coding) its transforms and streams
run through here: g_a and g_s channels-last, partly in bfloat16 where the CPU has it, and, like the
exact h_s, tile by tile on large images so that memory stays bounded (tiles give the values of the
whole-image pass, models/tiling.py); y's symbols go to and from the rANS coder as int32 buffers, and
streams are made safe against damage before they are decoded. Terms (tile, exact arithmetic):
docs/glossary.md; the speed and memory each choice buys: docs/performance.md.
"""

from __future__ import annotations

import array
import functools
import re
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from codec.models.strided import depth_to_space_conv, space_to_depth_conv
from codec.models.tiling import tiled


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX).

    Only with them do oneDNN's bfloat16 convolutions beat float32 ones. Read from /proc/cpuinfo, so
    Linux only; elsewhere False.

    Returns:
        bool: True if the CPU flags list avx512_bf16 or amx_bf16.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


# The transforms' precision when coding: bfloat16 (in the layers below) where the CPU has it
# natively, for speed at the same rate and PSNR (docs/performance.md). Decoded pixels may then differ
# a little from a float32 decoding; the symbols cannot, since h_s is exact. Set it to torch.float32
# to turn bfloat16 off.
DTYPE = torch.bfloat16 if cpu_computes_bfloat16() else torch.float32

# In bfloat16 only each transform's N -> N convolution at half the image's resolution runs, which
# holds most of its multiply-adds: run wider (GDN, the first or last layers, the lower resolutions),
# bfloat16 cost PSNR, limited to these it costs next to none (docs/performance.md, "bfloat16").
ANALYSIS_BFLOAT16_LAYERS = (2,)  # g_a's second convolution
SYNTHESIS_BFLOAT16_LAYERS = (4,)  # g_s's third transposed convolution

# Tiles of large images (docs/glossary.md). The halos cover each transform's reach: a latent sees 30
# pixels beyond its own 16 (four 5x5 stride-2 convolutions), a pixel sees 1.875 latents around its
# own (four transposed), a scale 1.75 hyper-latents around its own. Images up to a megapixel run in
# one piece (fastest); larger ones in tiles, sized to bound a 4K image's peak memory
# (docs/performance.md, "Tiles for large images").
WHOLE_PIXELS = 1 << 20
ANALYSIS_TILE, ANALYSIS_HALO = 384, 32  # pixels
SYNTHESIS_TILE, SYNTHESIS_HALO = 32, 2  # latents
HYPER_TILE, HYPER_HALO = 8, 2  # hyper-latents
HYPER_CHUNK = 128  # blocks at a time: bounds the exact h_s's float64 maps (twice as many raised a 4K peak)


def coding_layers(transform: nn.Sequential) -> list:
    """The transform's layers as coding runs them.

    A stride-2 first convolution and a stride-2 last transposed one are swapped for their faster,
    equal forms (models/strided.py); the other layers are returned as they are.

    Args:
        transform: g_a or g_s, an nn.Sequential of convolutions and GDN layers.

    Returns:
        list: callables, one per layer, each taking and returning an (N, C, H, W) float tensor.
    """
    first, *middle, last = transform
    if isinstance(first, nn.Conv2d) and first.stride == (2, 2):
        first = functools.partial(space_to_depth_conv, first)
    if isinstance(last, nn.ConvTranspose2d) and last.stride == (2, 2):
        last = functools.partial(depth_to_space_conv, last)
    return [first, *middle, last]


def coding_form(transform: nn.Sequential, dtype: torch.dtype, bfloat16_layers: tuple[int, ...]) -> Callable:
    """The transform as coding runs it: channels-last (oneDNN's fastest layout) and partly bfloat16.

    Args:
        transform: g_a or g_s.
        dtype: DTYPE; with torch.bfloat16 the layers named by `bfloat16_layers` run under autocast.
        bfloat16_layers: indexes into the transform of the layers that may run in bfloat16.

    Returns:
        Callable: maps an (N, C, H, W) float32 tensor to the transform's output, float32,
        channels-last; every layer's output is cast back to float32.
    """
    layers = coding_layers(transform)
    fast = set(bfloat16_layers) if dtype == torch.bfloat16 else set()

    def run(x: torch.Tensor) -> torch.Tensor:
        h = x.contiguous(memory_format=torch.channels_last)
        for index, layer in enumerate(layers):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=index in fast):
                h = layer(h).float()
        return h

    return run


def tiled_analysis(g_a: nn.Sequential, x: torch.Tensor, stride: int) -> torch.Tensor:
    """g_a(x) in its coding form, tile by tile on large images.

    Args:
        g_a: the analysis transform.
        x: (N, 3, H, W) float32 image in [0, 1], H and W multiples of `stride`.
        stride: pixels per latent (16).

    Returns:
        Tensor: y, (N, M, H / stride, W / stride) float32, channels-last.
    """
    return tiled(coding_form(g_a, DTYPE, ANALYSIS_BFLOAT16_LAYERS), x, 1 / stride, ANALYSIS_TILE, ANALYSIS_HALO, WHOLE_PIXELS)


def tiled_synthesis(g_s: nn.Sequential, y_hat: torch.Tensor, stride: int) -> torch.Tensor:
    """g_s(y_hat) in its coding form, tile by tile on large images.

    In channels-last oneDNN's convolutions and GDN's 1x1 ones give the same pixels with any thread
    count (tests/test_determinism.py), and the tile grid depends only on the image size, so a file
    always decodes to the same pixels on a given machine.

    Args:
        g_s: the synthesis transform.
        y_hat: (N, M, h, w) float32 dequantized latents.
        stride: pixels per latent (16).

    Returns:
        Tensor: x_hat, (N, 3, h * stride, w * stride) float32, not clamped, channels-last.
    """
    return tiled(coding_form(g_s, DTYPE, SYNTHESIS_BFLOAT16_LAYERS), y_hat, stride, SYNTHESIS_TILE, SYNTHESIS_HALO,
                 WHOLE_PIXELS // stride**2)


def tiled_hyper_synthesis(exact_h_s: Callable, z_hat: torch.Tensor, stride: int, hyper_stride: int) -> torch.Tensor:
    """h_s in its integer-exact form, tile by tile on large images, to bound its float64 maps.

    Its exact sums give the very same numbers in tiles as in one piece (docs/glossary.md).

    Args:
        exact_h_s: h_s on the fixed-point grid (models/exact.py), z_hat -> (N, C, h, w).
        z_hat: (N, C_z, h', w') float32 decoded hyper-latents.
        stride: pixels per latent (16).
        hyper_stride: pixels per hyper-latent (64).

    Returns:
        Tensor: (N, C, h' * r, w' * r) float32 multiples of 2^-12, r = hyper_stride // stride: y's
        scales, or scales and means stacked along the channels.
    """
    return tiled(exact_h_s, z_hat, hyper_stride // stride, HYPER_TILE, HYPER_HALO, WHOLE_PIXELS // hyper_stride**2)


CONTEXT_TILE, CONTEXT_HALO = 32, 2  # latents: the checkerboard context's 5x5 convolution reaches 2


def tiled_context(exact_correction: Callable, h: torch.Tensor) -> torch.Tensor:
    """The checkerboard context's correction of the scales and means, integer-exact, tile by tile.

    Its exact sums give the very same numbers in tiles. Tile and halo are even, so that every tile
    starts on a checkerboard anchor, as the whole image does.

    Args:
        exact_correction: the context on the fixed-point grid, (N, C, h, w) -> (N, C', h, w).
        h: (N, C, h, w) float32, at the latents' resolution.

    Returns:
        Tensor: exact_correction(h), (N, C', h, w) float32.
    """
    return tiled(exact_correction, h, 1, CONTEXT_TILE, CONTEXT_HALO, WHOLE_PIXELS // 256)


def bounded(string: bytes, symbols: int) -> bytes:
    """A stream made safe for CompressAI's rANS decoder, which never checks the end of its input.

    A damaged stream makes it read on: at most two 32-bit words per symbol, plus the bypass runs
    (escape codes) whose lengths come from the stream itself, each 4-bit value asking for at most 15
    more. Trailing zeros end every bypass run and cover those reads, so a damaged stream decodes to
    garbage instead of crashing. Valid streams never reach the padding.

    Args:
        string: one rANS stream as read from a file.
        symbols: how many symbols will be decoded from it.

    Returns:
        bytes: the stream followed by enough zero bytes to cover any over-read.
    """
    return string + bytes(16 * len(string) + 12 * symbols + 64)


# y's symbols go to CompressAI's rANS coder directly, as int32 buffers: its EntropyModel.compress and
# decompress convert them to and from Python lists, which costs memory and most of y's decoding time
# (docs/performance.md). The same streams either way.


def _int32_buffer(t: torch.Tensor) -> memoryview:
    return memoryview(t.reshape(-1).int().contiguous().numpy())


def _tables(entropy_model) -> tuple[list, list, list]:
    return entropy_model.quantized_cdf.tolist(), entropy_model.cdf_length.tolist(), entropy_model.offset.tolist()


def encode_symbols(entropy_model, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
    """One rANS stream of integer symbols, each coded with the CDF its index names.

    Args:
        entropy_model: a CompressAI EntropyModel whose CDF tables are built (update() was called).
        symbols: integer-valued tensor of any shape (float or int; cast to int32).
        indexes: the CDF index of each symbol, same number of elements.

    Returns:
        bytes: the stream.
    """
    return entropy_model.entropy_coder.encode_with_indexes(_int32_buffer(symbols), _int32_buffer(indexes), *_tables(entropy_model))


def decode_symbols(entropy_model, string: bytes, indexes: torch.Tensor) -> torch.Tensor:
    """The integer symbols of one rANS stream, the inverse of encode_symbols.

    Args:
        entropy_model: the EntropyModel that coded the stream.
        string: the stream (made safe by `bounded` where it may be damaged).
        indexes: the CDF index of each symbol, in the shape wanted.

    Returns:
        Tensor: the symbols, int32, in the shape of `indexes`.
    """
    values = entropy_model.entropy_coder.decode_with_indexes(string, _int32_buffer(indexes), *_tables(entropy_model))
    return torch.frombuffer(array.array("i", values), dtype=torch.int32).reshape(indexes.shape)
