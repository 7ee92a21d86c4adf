"""compress(image) -> bytes and decompress(bytes) -> image: the whole codec in two calls.

    data = codec.compress("photo.png", quality=40)   # 0-100, any value; higher: more bits, better
    data = codec.compress("photo.png", quality=40, effort=9)  # 0-9: a slower encoder, smaller files, the same decoder
    image = codec.decompress(data)
    result = codec.compress_to_target("photo.png", psnr=32.0)  # or bpp=0.5

The image is padded to the model's multiple by edge replication, coded, and cropped back, so any
width and height round-trip to the same size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from codec.allocator import bounded_heap
from codec.bitstream import MAX_QUALITY, Bitstream
from codec.errors import BitstreamError, CodecError, ModelError
from codec.image import open_image, to_image, to_tensor
from codec.metrics import bits_per_pixel, psnr as psnr_of
from codec.models import coding, refine
from codec.models.registry import ModelCard, default_card, get_card, load_model


def _hundredths(quality) -> int:
    """A quality 0-100 as the file stores it: in hundredths."""
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not math.isfinite(quality):
        raise CodecError(f"quality must be a number from 0 to 100 (got {quality!r})")
    if not 0 <= quality <= 100:
        raise CodecError(f"quality must be from 0 to 100 (got {quality:g})")
    return round(quality * 100)


def rate_position(net, hundredths: int) -> float:
    """A variable-rate model's rate position for a quality: 0-100 onto its anchors, linearly."""
    return hundredths * (net.anchors - 1) / MAX_QUALITY


def _effort(effort, card: ModelCard) -> int:
    """An effort level, checked: an integer from 0 to 9; above 0, for a variable-rate MSE model only.
    None: refine.DEFAULT_EFFORT, or 0 for a model without a search."""
    if effort is None:
        return refine.DEFAULT_EFFORT if card.variable_rate and card.metric == "mse" else 0
    if refine.check_effort(effort) and not card.variable_rate:
        raise ModelError(f"model {card.name} codes at one rate: it has no search of its latents (give effort 0)")
    if effort and card.metric != "mse":
        raise ModelError(f"model {card.name} was trained for {card.metric}: its latents are searched for MSE only (give effort 0)")
    return effort


def _chosen(quality, model: str | None) -> tuple[ModelCard, int | None]:
    """The model and the quality in hundredths (None for a one-rate model) a compress call asks for."""
    card = get_card(model) if model is not None else default_card()
    if not card.variable_rate:
        if quality is not None:
            raise ModelError(f"model {card.name} codes at one rate: give no quality with it")
        return card, None
    return card, _hundredths(card.default_quality if quality is None else quality)


def _targeted(bpp: float | None, psnr: float | None, model: str | None) -> ModelCard:
    """The model whose quality a compress_to_target call searches, after checking that it has one
    and that the call asks for one target, a positive number."""
    if (bpp is None) == (psnr is None):
        raise CodecError("give one target: bpp or PSNR")
    target = bpp if bpp is not None else psnr
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target) or target <= 0:
        raise CodecError(f"the target must be a positive number (got {target!r})")
    card, _ = _chosen(None, model)
    if not card.variable_rate:
        raise ModelError(f"model {card.name} codes at one rate: it has no quality to choose for a target")
    return card


def check_options(quality: float | None = None, model: str | None = None, bpp: float | None = None,
                  psnr: float | None = None, effort: int | None = None) -> None:
    """Raise the error that compress (or, given a target, compress_to_target) would raise for these
    options, before any image is read: a batch then reports a bad option once, not once per file."""
    if bpp is None and psnr is None:
        card, _ = _chosen(quality, model)
    else:
        card = _targeted(bpp, psnr, model)
    _effort(effort, card)


def compress(image: str | Path | Image.Image, quality: float | None = None, model: str | None = None,
             effort: int | None = None) -> bytes:
    """Code an image (a path or a PIL image) at a quality from 0 to 100 (default: the default
    model's), with the default model or a named one (a one-rate model takes no quality), searching
    its latents harder at a higher effort (0-9; default refine.DEFAULT_EFFORT, 0 for a one-rate
    model): a slower encoder, the same decoder."""
    card, hundredths = _chosen(quality, model)
    effort = _effort(effort, card)
    image = open_image(image)
    net = load_model(card)
    with bounded_heap(image.width * image.height > coding.WHOLE_PIXELS), torch.inference_mode():
        x = to_tensor(image, net.downsampling)
        if hundredths is None:
            strings = net.compress(x)
        elif effort == 0:
            strings = net.compress(x, rate_position(net, hundredths))
        else:
            strings = refine.refined_streams(net, x, image.height, image.width, rate_position(net, hundredths), effort)
    return Bitstream(card.name, card.weights_hash, image.width, image.height, image.mode, tuple(strings), hundredths).to_bytes()


def decompress(data: bytes | bytearray | memoryview) -> Image.Image:
    """Decode a file's bytes to the image, of the input's size, in mode "RGB" or "L"."""
    if isinstance(data, (str, Path)):
        raise CodecError("decompress takes the file's bytes: pass Path(name).read_bytes()")
    stream = Bitstream.from_bytes(bytes(data))
    try:
        card = get_card(stream.model)
    except ModelError:
        raise ModelError(f"the file was coded with model {stream.model!r}, which is not installed here "
                         "(the project's models/checkpoints/README.md says how to restore a model that left the package)")
    if card.weights_hash != stream.weights_hash:
        raise ModelError(
            f"the file was coded with other weights than this machine's model {card.name!r} "
            f"(weights hash {stream.weights_hash.hex()} != {card.weights_hash.hex()})"
        )
    net = load_model(card)
    if len(stream.streams) != len(net.latent_names):
        raise BitstreamError(f"model {card.name} needs {len(net.latent_names)} streams, the file has {len(stream.streams)}")
    variable = card.variable_rate
    if variable != (stream.quality is not None):
        raise BitstreamError(f"corrupted file (a quality field that model {card.name} does not take, or none where it needs one)")
    multiple = net.downsampling
    height, width = -(-stream.height // multiple) * multiple, -(-stream.width // multiple) * multiple
    with bounded_heap(height * width > coding.WHOLE_PIXELS), torch.inference_mode():
        strings = list(stream.streams)
        x_hat = (net.decompress(strings, height, width) if not variable
                 else net.decompress(strings, height, width, rate_position(net, stream.quality)))
        return to_image(x_hat[..., : stream.height, : stream.width], stream.mode)


class Targeted(NamedTuple):
    """What compress_to_target chose and reached; `met` is False when no quality could."""

    data: bytes
    quality: float
    bpp: float
    psnr: float | None  # measured for a PSNR target only
    met: bool

    def __repr__(self) -> str:
        psnr = "" if self.psnr is None else f", psnr={self.psnr:.2f}"
        return f"Targeted({len(self.data)} bytes, quality={self.quality:g}, bpp={self.bpp:.4f}{psnr}, met={self.met})"


BPP_TOLERANCE = 0.02  # a bpp target is met from 98 % of it up to itself
PSNR_STEP = 25  # hundredths: a PSNR target's search ends within a quarter of a quality unit


def compress_to_target(image: str | Path | Image.Image, bpp: float | None = None, psnr: float | None = None,
                       model: str | None = None, effort: int | None = None) -> Targeted:
    """Code at the quality that best meets one target, with the default model or a named
    variable-rate one: the most bits within `bpp` (stopping within 2 % of it), or the fewest bits
    that reach `psnr` dB (to a quarter of a quality unit). A bisection over the quality, whose bits
    and PSNR grow with it; each probe is a real coding, and a decoding for a PSNR target. When none
    meets it, the nearest end: quality 0 for a bpp target, 100 for a PSNR one. Every probe codes at
    `effort` (see compress)."""
    card = _targeted(bpp, psnr, model)
    effort = _effort(effort, card)
    image = open_image(image)
    probes: dict[int, Targeted] = {}

    def probe(hundredths: int) -> Targeted:
        if hundredths not in probes:
            data = compress(image, quality=hundredths / 100, model=card.name, effort=effort)
            rate = bits_per_pixel(len(data), image)
            if bpp is not None:
                probes[hundredths] = Targeted(data, hundredths / 100, rate, None, rate <= bpp)
            else:
                reached = psnr_of(image, decompress(data))
                probes[hundredths] = Targeted(data, hundredths / 100, rate, reached, reached >= psnr)
        return probes[hundredths]

    low, high = 0, MAX_QUALITY
    if bpp is not None:  # the highest quality within the budget
        if not probe(low).met or probe(high).met:
            return probe(high) if probe(high).met else probe(low)
        while high - low > 1 and probe(low).bpp < (1 - BPP_TOLERANCE) * bpp:
            middle = (low + high) // 2
            low, high = (middle, high) if probe(middle).met else (low, middle)
        return probe(low)
    if probe(low).met or not probe(high).met:  # the lowest quality that reaches the PSNR
        return probe(low) if probe(low).met else probe(high)
    while high - low > PSNR_STEP:
        middle = (low + high) // 2
        low, high = (low, middle) if probe(middle).met else (middle, high)
    return probe(high)
