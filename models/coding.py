"""How the models code on this machine: the deployment side, kept out of their definitions.

models/architectures.py says what a model computes; in eval mode (coding) its transforms and streams
run through here: g_a and g_s channels-last, partly in bfloat16 where the CPU has it, and, like the
exact h_s, tile by tile on large images so that memory stays bounded (tiles give the values of the
whole-image pass, models/tiling.py); y's symbols go to and from the rANS coder as int32 buffers, and
streams are made safe against damage before they are decoded.
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
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), with which oneDNN's
    bfloat16 convolutions run several times faster than float32 ones. Linux only; elsewhere, no."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


# The transforms' precision when coding: bfloat16 (in the layers below) where the CPU has it
# natively, which codes faster at the same rate and PSNR to about 0.01 dB (benchmarks/speed.py).
# Decoded pixels differ from a float32 decoding by at most 2 levels; the symbols do not (h_s is exact).
DTYPE = torch.bfloat16 if cpu_computes_bfloat16() else torch.float32

# In bfloat16 only the N -> N convolution at half the image's resolution of each transform runs:
# 61 % of the transform's multiply-adds. Run wider (GDN, the first or last layers, the lower
# resolutions too), bfloat16 cost the high-rate models 0.01-0.03 dB of PSNR on Kodak, and up to
# 0.2 dB on an image; limited to these, about 0.002 dB (benchmarks/speed.py).
ANALYSIS_BFLOAT16_LAYERS = (2,)  # g_a's second convolution
SYNTHESIS_BFLOAT16_LAYERS = (4,)  # g_s's third transposed convolution

# Tiles of large images. The halos cover each transform's reach: a latent sees 30 pixels beyond its
# own 16 (four 5x5 stride-2 convolutions), a pixel sees 1.875 latents around its own (four
# transposed), a scale 1.75 hyper-latents around its own. Images up to a megapixel run in one piece
# (fastest); larger ones in tiles of 384 pixels and 32 latents, which keep a 4K image under 1.5 GB.
WHOLE_PIXELS = 1 << 20
ANALYSIS_TILE, ANALYSIS_HALO = 384, 32  # pixels
SYNTHESIS_TILE, SYNTHESIS_HALO = 32, 2  # latents
HYPER_TILE, HYPER_HALO = 8, 2  # hyper-latents
HYPER_CHUNK = 128  # blocks at a time: bounds the exact h_s's float64 maps (4K compress peaked at 1.51 GB with 256)


def coding_layers(transform: nn.Sequential) -> list:
    """The transform's layers as coding runs them: a strided first convolution and a strided last
    transposed one in their faster forms (models/strided.py), the others as they are."""
    first, *middle, last = transform
    if isinstance(first, nn.Conv2d) and first.stride == (2, 2):
        first = functools.partial(space_to_depth_conv, first)
    if isinstance(last, nn.ConvTranspose2d) and last.stride == (2, 2):
        last = functools.partial(depth_to_space_conv, last)
    return [first, *middle, last]


def coding_form(transform: nn.Sequential, dtype: torch.dtype, bfloat16_layers: tuple[int, ...]) -> Callable:
    """The transform as coding runs it: channels-last (oneDNN's fastest layout), its coding_layers,
    and, when `dtype` is bfloat16, its `bfloat16_layers` in bfloat16 (through autocast); every other
    layer, and every output, is float32."""
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
    """g_a(x), `stride` pixels a latent, in its coding form, tile by tile on large images."""
    return tiled(coding_form(g_a, DTYPE, ANALYSIS_BFLOAT16_LAYERS), x, 1 / stride, ANALYSIS_TILE, ANALYSIS_HALO, WHOLE_PIXELS)


def tiled_synthesis(g_s: nn.Sequential, y_hat: torch.Tensor, stride: int) -> torch.Tensor:
    """g_s(y_hat), `stride` pixels a latent, in its coding form, tile by tile on large images. In
    channels-last oneDNN's convolutions and GDN's 1x1 ones give the same pixels with any thread
    count (tests/test_determinism.py), and the tile grid depends only on the image size, so a file
    always decodes to the same pixels."""
    return tiled(coding_form(g_s, DTYPE, SYNTHESIS_BFLOAT16_LAYERS), y_hat, stride, SYNTHESIS_TILE, SYNTHESIS_HALO,
                 WHOLE_PIXELS // stride**2)


def tiled_hyper_synthesis(exact_h_s: Callable, z_hat: torch.Tensor, stride: int, hyper_stride: int) -> torch.Tensor:
    """exact_h_s(z_hat), h_s in its integer-exact form, `stride` and `hyper_stride` pixels a latent
    and a hyper-latent, tile by tile on large images: its exact sums give the very same integers in
    tiles as in one piece, whose float64 maps take 0.7 GB at 4K."""
    return tiled(exact_h_s, z_hat, hyper_stride // stride, HYPER_TILE, HYPER_HALO, WHOLE_PIXELS // hyper_stride**2)


CONTEXT_TILE, CONTEXT_HALO = 32, 2  # latents: the checkerboard context's 5x5 convolution reaches 2


def tiled_context(exact_correction: Callable, h: torch.Tensor) -> torch.Tensor:
    """exact_correction(h), the checkerboard context's correction of the scales and means in its
    integer-exact form, tile by tile on large images: its exact sums give the very same numbers in
    tiles. Tile and halo are even, so that every tile starts on an anchor, as the whole image does."""
    return tiled(exact_correction, h, 1, CONTEXT_TILE, CONTEXT_HALO, WHOLE_PIXELS // 256)


def bounded(string: bytes, symbols: int) -> bytes:
    """A stream made safe for CompressAI's rANS decoder, which never checks the end of its input.

    A damaged stream makes it read on: at most two 32-bit words per symbol, plus the bypass runs
    (escape codes) whose lengths come from the stream itself, each 4-bit value asking for at most 15
    more. Trailing zeros end every bypass run and cover those reads, so a damaged stream decodes to
    garbage instead of crashing. Valid streams never reach the padding.
    """
    return string + bytes(16 * len(string) + 12 * symbols + 64)


# y's symbols go to CompressAI's rANS coder directly, as int32 buffers: its EntropyModel.compress and
# decompress convert them to and from Python lists (without them a 4K compress peaked 60 MB lower),
# and torch.tensor() over the decoded list took most of y's decoding time. The same streams either way.


def _int32_buffer(t: torch.Tensor) -> memoryview:
    return memoryview(t.reshape(-1).int().contiguous().numpy())


def _tables(entropy_model) -> tuple[list, list, list]:
    return entropy_model.quantized_cdf.tolist(), entropy_model.cdf_length.tolist(), entropy_model.offset.tolist()


def encode_symbols(entropy_model, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
    """One stream of integer symbols, each coded with the CDF its index names."""
    return entropy_model.entropy_coder.encode_with_indexes(_int32_buffer(symbols), _int32_buffer(indexes), *_tables(entropy_model))


def decode_symbols(entropy_model, string: bytes, indexes: torch.Tensor) -> torch.Tensor:
    """The integer symbols of one stream, in the shape of their indexes."""
    values = entropy_model.entropy_coder.decode_with_indexes(string, _int32_buffer(indexes), *_tables(entropy_model))
    return torch.frombuffer(array.array("i", values), dtype=torch.int32).reshape(indexes.shape)
