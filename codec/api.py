"""compress(image) -> bytes and decompress(bytes) -> image: the whole codec in two calls.

    data = codec.compress("photo.png", quality=3)
    image = codec.decompress(data)
    result = codec.compress_to_target("photo.png", psnr=32.0)  # or bpp=0.5

The image is padded to the model's multiple by edge replication, coded, and cropped back, so any
width and height round-trip to the same size.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from codec.allocator import bounded_heap
from codec.bitstream import Bitstream
from codec.errors import BitstreamError, CodecError, ModelError
from codec.image import open_image, to_image, to_tensor
from codec.metrics import bits_per_pixel, psnr as psnr_of
from models.registry import card_for_quality, get_card, load_model, quality_levels


def compress(image: str | Path | Image.Image, quality: int | None = None, model: str | None = None) -> bytes:
    """Code an image (a path or a PIL image) with a shipped quality level or a named model."""
    if quality is not None and model is not None:
        raise ModelError("give a quality or a model name, not both")
    card = get_card(model) if model is not None else card_for_quality(quality)
    image = open_image(image)
    net = load_model(card)
    with bounded_heap(image.width * image.height > net.whole_pixels), torch.inference_mode():
        strings = net.compress(to_tensor(image, net.downsampling))
    return Bitstream(card.name, card.weights_hash, image.width, image.height, image.mode, tuple(strings)).to_bytes()


def decompress(data: bytes) -> Image.Image:
    """Decode a file's bytes to the image, of the input's size, in mode "RGB" or "L"."""
    stream = Bitstream.from_bytes(data)
    try:
        card = get_card(stream.model)
    except ModelError:
        raise ModelError(f"the file was coded with model {stream.model!r}, which is not installed here")
    if card.weights_hash != stream.weights_hash:
        raise ModelError(
            f"the file was coded with other weights than this machine's model {card.name!r} "
            f"(weights hash {stream.weights_hash.hex()} != {card.weights_hash.hex()})"
        )
    net = load_model(card)
    if len(stream.streams) != len(net.latent_names):
        raise BitstreamError(f"model {card.name} needs {len(net.latent_names)} streams, the file has {len(stream.streams)}")
    multiple = net.downsampling
    height, width = -(-stream.height // multiple) * multiple, -(-stream.width // multiple) * multiple
    with bounded_heap(height * width > net.whole_pixels), torch.inference_mode():
        x_hat = net.decompress(list(stream.streams), height, width)
        return to_image(x_hat[..., : stream.height, : stream.width], stream.mode)


class Targeted(NamedTuple):
    """What compress_to_target chose and reached; `met` is False when no rate point could."""

    data: bytes
    quality: int
    bpp: float
    psnr: float | None  # measured for a PSNR target only
    met: bool


def compress_to_target(image: str | Path | Image.Image, bpp: float | None = None, psnr: float | None = None) -> Targeted:
    """Code at the shipped rate point that best meets one target: the most bits within `bpp`, or
    the fewest bits that reach `psnr` dB. A binary search over the quality levels (bits and PSNR
    grow with the level), each probe a real coding, and a decoding for a PSNR target. When none
    meets it, the nearest end: the lowest level for a bpp target, the highest for a PSNR one."""
    if (bpp is None) == (psnr is None):
        raise CodecError("give one target: bpp or PSNR")
    if (bpp if bpp is not None else psnr) <= 0:
        raise CodecError(f"the target must be positive (got {bpp if bpp is not None else psnr:g})")
    image = open_image(image)
    levels = quality_levels()
    if not levels:
        raise ModelError("no shipped rate points to choose from")
    probes: dict[int, Targeted] = {}

    def probe(index: int) -> Targeted:
        if index not in probes:
            card = levels[index]
            data = compress(image, model=card.name)
            rate = bits_per_pixel(len(data), image)
            if bpp is not None:
                probes[index] = Targeted(data, card.quality, rate, None, rate <= bpp)
            else:
                reached = psnr_of(image, decompress(data))
                probes[index] = Targeted(data, card.quality, rate, reached, reached >= psnr)
        return probes[index]

    # bpp: the last level within the budget; PSNR: the first level that reaches it.
    low, high = 0, len(levels) - 1
    while low < high:
        middle = (low + high + (bpp is not None)) // 2
        if bpp is not None:
            low, high = (middle, high) if probe(middle).met else (low, middle - 1)
        else:
            low, high = (low, middle) if probe(middle).met else (middle + 1, high)
    return probe(low)
