"""compress(image) -> bytes and decompress(bytes) -> image: the whole codec in two calls.

    data = codec.compress("photo.png", quality=3)
    image = codec.decompress(data)

The image is padded to the model's multiple by edge replication, coded, and cropped back, so any
width and height round-trip to the same size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from codec.bitstream import Bitstream
from codec.errors import BitstreamError, ModelError
from codec.image import open_image, to_image, to_tensor
from models.registry import card_for_quality, get_card, load_model


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad right and bottom by edge replication to a multiple of the model's downsampling."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def compress(image: str | Path | Image.Image, quality: int | None = None, model: str | None = None) -> bytes:
    """Code an image (a path or a PIL image) with a shipped quality level or a named model."""
    if quality is not None and model is not None:
        raise ModelError("give a quality or a model name, not both")
    card = get_card(model) if model is not None else card_for_quality(quality)
    image = open_image(image)
    net = load_model(card)
    with torch.inference_mode():
        strings = net.compress(pad_to_multiple(to_tensor(image), net.downsampling))
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
    with torch.inference_mode():
        x_hat = net.decompress(list(stream.streams), height, width)
    return to_image(x_hat[..., : stream.height, : stream.width], stream.mode)
