"""`codec info`: what a .lic file holds, read from its container alone: nothing is decoded, and no
model is loaded (the registry's manifests say whether its model is installed here)."""

from __future__ import annotations

from codec.bitstream import MAGIC, METADATA_NAMES, Bitstream
from codec.errors import ModelError

LAYOUT_NAMES = {"RGB": "RGB", "L": "grayscale"}  # the channel layouts of codec.bitstream.LAYOUTS


def describe(data: bytes) -> list[tuple[str, str]]:
    """(field, value) lines for a file's bytes; a file that is not a valid container raises BitstreamError."""
    stream = Bitstream.from_bytes(data)
    version = data[len(MAGIC)]  # from_bytes checked it; the byte after the magic
    coded = sum(len(s) for s in stream.streams)
    carried = sum(len(data) for data in stream.metadata.values())
    return [
        ("format", f"version {version}"),
        ("model", _model(stream)),
        ("quality", "none (a one-rate model)" if stream.quality is None else f"{stream.quality / 100:g}"),
        ("dimensions", f"{stream.width}x{stream.height} {LAYOUT_NAMES[stream.mode]}"),
        ("size", f"{len(data):,} bytes, {len(data) * 8 / (stream.width * stream.height):.4f} bpp"),
        ("streams", f"{len(stream.streams)}: " + " + ".join(f"{len(s):,}" for s in stream.streams)
                    + f" bytes; header and CRC {len(data) - coded - carried:,} bytes"),
        ("metadata", ", ".join(f"{METADATA_NAMES[kind]} {len(entry):,} bytes" for kind, entry in stream.metadata.items())
                     or "none"),
    ]


def _model(stream: Bitstream) -> str:
    from codec.registry import get_card

    try:
        card = get_card(stream.model)
    except ModelError:
        return f"{stream.model} (not installed here: this file does not decode here)"
    if card.weights_hash != stream.weights_hash:
        return (f"{stream.model} (installed with other weights: {card.weights_hash.hex()} here, {stream.weights_hash.hex()} "
                "in the file; it does not decode here)")
    return f"{stream.model} ({card.arch}, installed, weights {stream.weights_hash.hex()})"
