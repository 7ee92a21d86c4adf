"""compress(image) -> bytes and decompress(bytes) -> image: the whole codec in two calls.

    data = codec.compress("photo.png", quality=40)   # 0-100, any value; higher: more bits, better
    data = codec.compress("photo.png", quality=40, effort=9)  # 0-9: a slower encoder, smaller files, the same decoder
    image = codec.decompress(data)                   # or a path to a .lic file
    result = codec.compress_to_target("photo.png", psnr=32.0)  # or bpp=0.5, or size=20_000 (bytes)

The image is padded to the model's multiple by edge replication, coded, and cropped back, so any
width and height round-trip to the same size. The input's ICC profile, EXIF and XMP are carried in
the file (metadata=False leaves them out) and come back in the decoded image's `info`. Quality,
hundredths, rate position and effort are defined in docs/glossary.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from codec.allocator import bounded_heap
from codec.bitstream import MAX_QUALITY, Bitstream
from codec.errors import BitstreamError, CodecError, ModelError, TargetError
from codec.image import check_metadata, icc_colour_space, is_grey, metadata_of, open_image, to_image, to_tensor, with_metadata
from codec.metrics import bits_per_pixel, psnr as psnr_of
from codec.models import coding, refine
from codec.registry import RETIRED_MODELS, ModelCard, default_card, get_card, load_model, user_dir


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


def check_effort(effort) -> int:
    """An effort level as given, if it is one: an integer from 0 to refine.MAX_EFFORT."""
    try:
        return refine.check_effort(effort)
    except refine.SearchError as error:
        raise CodecError(str(error)) from None


def _effort(effort, card: ModelCard) -> int:
    """An effort level, checked: an integer from 0 to 9; above 0, for a variable-rate MSE model only.
    None: refine.DEFAULT_EFFORT, or 0 for a model without a search."""
    if effort is None:
        return refine.DEFAULT_EFFORT if card.variable_rate and card.metric == "mse" else 0
    if check_effort(effort) and not card.variable_rate:
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


def _targeted(bpp: float | None, psnr: float | None, model: str | None, size: int | None = None) -> ModelCard:
    """The model whose quality a compress_to_target call searches, after checking that it has one
    and that the call asks for one target, a positive number (of bytes, a whole one)."""
    targets = [target for target in (bpp, psnr, size) if target is not None]
    if len(targets) != 1:
        raise CodecError("give one target: bpp, size or PSNR")
    target = targets[0]
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target) or target <= 0:
        raise CodecError(f"the target must be a positive number (got {target!r})")
    if size is not None and size != int(size):
        raise CodecError(f"the size is a whole number of bytes (got {size!r})")
    card, _ = _chosen(None, model)
    if not card.variable_rate:
        raise ModelError(f"model {card.name} codes at one rate: it has no quality to choose for a target")
    return card


def check_options(quality: float | None = None, model: str | None = None, bpp: float | None = None,
                  psnr: float | None = None, effort: int | None = None, size: int | None = None) -> None:
    """Raise the error that compress (or, given a target, compress_to_target) would raise for these
    options, before any image is read: a batch then reports a bad option once, not once per file."""
    if bpp is None and psnr is None and size is None:
        card, _ = _chosen(quality, model)
    else:
        card = _targeted(bpp, psnr, model, size)
    _effort(effort, card)


def coded_mode(image: Image.Image, metadata: dict[str, bytes]) -> str:
    """The layout a file records: grey-only pixels (in any input mode) decode as grayscale, unless
    an RGB ICC profile rides along, which a grayscale image cannot carry."""
    return "L" if is_grey(image) and icc_colour_space(metadata.get("icc")) in (None, "L") else "RGB"


def compress(image: str | Path | bytes | Image.Image, quality: float | None = None, model: str | None = None,
             effort: int | None = None, metadata: bool = True) -> bytes:
    """Code an image (a path, encoded image bytes or a PIL image) at a quality from 0 to 100
    (default: the default model's), with the default model or a named one (a one-rate model takes no
    quality), searching its latents harder at a higher effort (0-9; default refine.DEFAULT_EFFORT, 0
    for a one-rate model): a slower encoder, the same decoder. The input's ICC profile, EXIF and XMP
    ride along unless `metadata` is False."""
    card, hundredths = _chosen(quality, model)
    effort = _effort(effort, card)
    image = open_image(image)
    carried = metadata_of(image) if metadata else {}
    net = load_model(card)
    with bounded_heap(image.width * image.height > coding.WHOLE_PIXELS), torch.inference_mode():
        x = to_tensor(image, net.downsampling)
        position = None if hundredths is None else rate_position(net, hundredths)
        if effort == 0:
            strings = net.compress(x, position)
        else:
            try:
                strings = refine.refined_streams(net, x, image.height, image.width, position, effort)
            except refine.SearchError as error:  # the model layer's error, as the codec's
                raise CodecError(str(error)) from None
    return Bitstream(card.name, card.weights_hash, image.width, image.height, coded_mode(image, carried), tuple(strings),
                     hundredths, carried).to_bytes()


def decompress(data: str | Path | bytes | bytearray | memoryview) -> Image.Image:
    """Decode a file (its bytes, or a path to it) to the image, of the input's size, in mode "RGB"
    or "L", with the metadata it carries in `info` ("icc_profile", "exif", "xmp")."""
    if isinstance(data, (str, Path)):
        try:
            data = Path(data).read_bytes()
        except OSError as error:
            raise CodecError(f"{data}: {(error.strerror or str(error)).lower()}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"decompress takes a file's bytes or its path, not {type(data).__name__}")
    stream = Bitstream.from_bytes(bytes(data))
    check_metadata(stream.metadata)
    try:
        card = get_card(stream.model)
    except ModelError:
        raise ModelError(missing_model(stream.model))
    if card.weights_hash != stream.weights_hash:
        raise ModelError(
            f"the file was coded with other weights than this machine's model {card.name!r} "
            f"(weights hash {stream.weights_hash.hex()} != {card.weights_hash.hex()})"
        )
    net = load_model(card)
    if len(stream.streams) != len(net.latent_names):
        raise BitstreamError(f"model {card.name} needs {len(net.latent_names)} streams, the file has {len(stream.streams)}")
    if card.variable_rate != (stream.quality is not None):
        raise BitstreamError(f"corrupted file (a quality field that model {card.name} does not take, or none where it needs one)")
    multiple = net.downsampling
    height, width = -(-stream.height // multiple) * multiple, -(-stream.width // multiple) * multiple
    with bounded_heap(height * width > coding.WHOLE_PIXELS), torch.inference_mode():
        position = None if stream.quality is None else rate_position(net, stream.quality)
        x_hat = net.decompress(list(stream.streams), height, width, position)
        image = to_image(x_hat[..., : stream.height, : stream.width], stream.mode)
    image.info = with_metadata(image.info, stream.metadata)
    return image


def missing_model(name: str) -> str:
    """Why a file's model is not here, and how to bring it."""
    if name in RETIRED_MODELS:
        return (f"the file was coded with model {name!r}, which left the package: its weights are in the project's "
                f"git history (models/checkpoints/README.md in its source says how to copy them into {user_dir()})")
    return (f"the file was coded with model {name!r}, which is not installed here: register it with "
            f"`codec export CHECKPOINT --name {name}`, or copy its {name}.pt and {name}.json into {user_dir()} "
            "(user models live in $CODEC_HOME/models)")


class Targeted(NamedTuple):
    """What compress_to_target chose and reached; `met` is False only when the caller asked for the
    closest result and no quality meets the target."""

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


def compress_to_target(image: str | Path | bytes | Image.Image, bpp: float | None = None, psnr: float | None = None,
                       size: int | None = None, model: str | None = None, effort: int | None = None,
                       closest: bool = False, metadata: bool = True) -> Targeted:
    """Code at the quality that best meets one target, with the default model or a named
    variable-rate one: the most bits within `bpp` or `size` bytes (stopping within 2 % of it), or
    the fewest bits that reach `psnr` dB (to a quarter of a quality unit). A bisection over the
    quality, whose bits and PSNR grow with it; each probe is a real coding (the whole file, metadata
    included), and a decoding for a PSNR target. When no quality meets it, a TargetError names the
    closest (quality 0 for a budget, 100 for a PSNR) and holds it as `.closest`; with `closest=True`
    that result is returned instead, its `met` False. Every probe codes at `effort` and carries
    `metadata` (see compress)."""
    card = _targeted(bpp, psnr, model, size)
    effort = _effort(effort, card)
    image = open_image(image)
    if size is not None:
        bpp = bits_per_pixel(int(size), image)  # the same arithmetic as a probe's: exactly `size` bytes meets it
    probes: dict[int, Targeted] = {}

    def probe(hundredths: int) -> Targeted:
        if hundredths not in probes:
            data = compress(image, quality=hundredths / 100, model=card.name, effort=effort, metadata=metadata)
            rate = bits_per_pixel(len(data), image)
            if bpp is not None:
                probes[hundredths] = Targeted(data, hundredths / 100, rate, None, rate <= bpp)
            else:
                reached = psnr_of(image, decompress(data))
                probes[hundredths] = Targeted(data, hundredths / 100, rate, reached, reached >= psnr)
        return probes[hundredths]

    low, high = 0, MAX_QUALITY
    if bpp is not None:  # the highest quality within the budget
        if not probe(low).met:
            nearest = probe(low)
            budget = f"{size:,} bytes" if size is not None else f"{bpp:g} bpp"
            return _missed(nearest, closest, f"no quality fits in {budget}: the smallest file, quality 0, is "
                                             f"{len(nearest.data):,} bytes ({nearest.bpp:.4f} bpp)")
        if probe(high).met:
            return probe(high)
        while high - low > 1 and probe(low).bpp < (1 - BPP_TOLERANCE) * bpp:
            middle = (low + high) // 2
            low, high = (middle, high) if probe(middle).met else (low, middle)
        return probe(low)
    if probe(low).met:  # the lowest quality that reaches the PSNR
        return probe(low)
    if not probe(high).met:
        nearest = probe(high)
        return _missed(nearest, closest, f"no quality reaches {psnr:g} dB: the closest, quality 100, gives "
                                         f"{nearest.psnr:.2f} dB ({len(nearest.data):,} bytes, {nearest.bpp:.4f} bpp)")
    while high - low > PSNR_STEP:
        middle = (low + high) // 2
        low, high = (low, middle) if probe(middle).met else (middle, high)
    return probe(high)


def _missed(nearest: Targeted, closest: bool, message: str) -> Targeted:
    """A target no quality meets: the nearest result when the caller asked for it, else the error."""
    if closest:
        return nearest
    raise TargetError(message, nearest)
