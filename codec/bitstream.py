"""The file container. Everything the decoder needs is in the file; nothing else is trusted.

Layout, integers big-endian:

    size  field
    4     magic b"\\x89LIC" (the high first byte catches 7-bit and text-mode transfers, as in PNG)
    1     format version (2; version 1, read too, lacks the quality field)
    1     n, the length of the model name
    n     model name, ASCII (a registry name: the decoder loads that model)
    8     the first 8 bytes of the sha256 of the model's weights file
    4     width in pixels
    4     height in pixels
    1     channel layout: 0 = RGB, 1 = grayscale (coded as RGB, decoded to one channel)
    2     quality in hundredths (0-10000) for a variable-rate model; 65535 for a one-rate model
    1     k, the number of entropy-coded streams (the model's, in its order: y, then z)
    4*k   the length of each stream
    ...   the streams
    4     CRC32 of every byte before it (always the file's last 4 bytes, whatever the version)

The overhead is 30 + n + 4k bytes: 41 for a 3-character model name and two streams.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from codec.errors import BitstreamError

MAGIC = b"\x89LIC"
VERSION = 2
READABLE_VERSIONS = (1, 2)
NO_QUALITY = 0xFFFF
MAX_QUALITY = 10000  # hundredths: quality 100
HASH_BYTES = 8  # how much of the weights' sha256 a file carries
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 27  # 134 megapixels: larger headers are refused before anything is allocated
LAYOUTS = {0: "RGB", 1: "L"}


@dataclass(frozen=True)
class Bitstream:
    model: str
    weights_hash: bytes
    width: int
    height: int
    mode: str  # "RGB" or "L": what the decoder gives back
    streams: tuple[bytes, ...]
    quality: int | None = None  # hundredths, for a variable-rate model

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(s)) for s in self.streams)
        return (f"Bitstream(model={self.model!r}, {self.width}x{self.height} {self.mode}, quality={self.quality}, "
                f"streams of {sizes} bytes)")

    def to_bytes(self) -> bytes:
        name = self.model.encode("ascii")
        layout = {mode: code for code, mode in LAYOUTS.items()}[self.mode]
        header = (
            MAGIC
            + struct.pack(">BB", VERSION, len(name)) + name
            + self.weights_hash
            + struct.pack(">IIBHB", self.width, self.height, layout, NO_QUALITY if self.quality is None else self.quality,
                          len(self.streams))
            + b"".join(struct.pack(">I", len(s)) for s in self.streams)
        )
        body = header + b"".join(self.streams)
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitstream:
        reader = _Reader(data)
        if reader.take(len(MAGIC), "magic") != MAGIC:
            raise BitstreamError("not a codec file (bad magic bytes)")
        version = reader.unpack(">B", "format version")
        if version not in READABLE_VERSIONS:
            raise BitstreamError(f"unsupported format version {version} (this decoder reads versions 1 and 2)")
        name = reader.take(reader.unpack(">B", "model name length"), "model name")
        weights_hash = reader.take(HASH_BYTES, "weights hash")
        if version == 1:
            (width, height, layout, count), quality = reader.unpack(">IIBB", "image header"), NO_QUALITY
        else:
            width, height, layout, quality, count = reader.unpack(">IIBHB", "image header")
        lengths = [reader.unpack(">I", "stream lengths") for _ in range(count)]
        expected = reader.offset + sum(lengths) + 4
        if len(data) < expected:
            raise BitstreamError(f"truncated file: {len(data)} bytes, the header announces {expected}")
        if len(data) > expected:
            raise BitstreamError(f"{len(data) - expected} unexpected bytes after the end of the stream")
        (crc,) = struct.unpack(">I", data[-4:])
        if zlib.crc32(data[:-4]) != crc:
            raise BitstreamError("corrupted file (CRC32 mismatch)")
        streams = tuple(reader.take(length, "stream") for length in lengths)
        try:
            model = name.decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError("corrupted file (model name is not ASCII)")
        if layout not in LAYOUTS:
            raise BitstreamError(f"unknown channel layout {layout}")
        if quality > MAX_QUALITY and quality != NO_QUALITY:
            raise BitstreamError(f"corrupted file (quality {quality / 100:g} is outside 0-100)")
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
            raise BitstreamError(f"image size {width}x{height} is outside what this decoder accepts")
        return cls(model, weights_hash, width, height, LAYOUTS[layout], streams, None if quality == NO_QUALITY else quality)


class _Reader:
    """Bounds-checked reads: running past the end is a truncated file, never an IndexError."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise BitstreamError(f"truncated file: ends inside the {what}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str, what: str):
        values = struct.unpack(fmt, self.take(struct.calcsize(fmt), what))
        return values[0] if len(values) == 1 else values
