"""The file container. Everything the decoder needs is in the file; nothing else is trusted.

Layout, integers big-endian:

    size  field
    4     magic b"\\x89LIC" (the high first byte catches 7-bit and text-mode transfers, as in PNG)
    1     format version: 2, or 3 for a file that carries metadata (version 1, read too, lacks the quality field)
    1     n, the length of the model name
    n     model name, ASCII (a registry name: the decoder loads that model)
    8     the first 8 bytes of the sha256 of the model's weights file
    4     width in pixels
    4     height in pixels
    1     channel layout: 0 = RGB, 1 = grayscale (coded as RGB, decoded to one channel)
    2     quality in hundredths (0-10000) for a variable-rate model; 65535 for a one-rate model
    1     k, the number of entropy-coded streams (the model's, in its order: y, then z)
    4*k   the length of each stream
          version 3 only:
    1       m, the number of metadata entries (1-3)
    5*m     each entry's kind (1 = ICC profile, 2 = EXIF, 3 = XMP; ascending) and length (4 bytes)
    ...   the streams
    ...   version 3 only: the metadata entries, in their order
    4     CRC32 of every byte before it (always the file's last 4 bytes, whatever the version)

The overhead is 30 + n + 4k bytes: 41 for a 3-character model name and two streams. A file without
metadata is version 2, so the encoder writes what it wrote before metadata existed; metadata costs
1 + 5m bytes more than itself. The entries are the input's, as its format stored them: an ICC profile,
EXIF as a TIFF structure (without JPEG's "Exif\\0\\0"), XMP as UTF-8 text.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from codec.errors import BitstreamError

MAGIC = b"\x89LIC"
VERSION = 2
METADATA_VERSION = 3  # a file that carries metadata
READABLE_VERSIONS = (1, 2, 3)
METADATA_KINDS = {1: "icc", 2: "exif", 3: "xmp"}
METADATA_NAMES = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP"}  # as messages name them
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
    metadata: dict[str, bytes] = field(default_factory=dict)  # "icc", "exif", "xmp": what the input carried

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(s)) for s in self.streams)
        carried = "".join(f", {kind} of {len(data)} bytes" for kind, data in self.metadata.items())
        return (f"Bitstream(model={self.model!r}, {self.width}x{self.height} {self.mode}, quality={self.quality}, "
                f"streams of {sizes} bytes{carried})")

    def to_bytes(self) -> bytes:
        name = self.model.encode("ascii")
        layout = {mode: code for code, mode in LAYOUTS.items()}[self.mode]
        codes = {kind: code for code, kind in METADATA_KINDS.items()}
        entries = sorted((codes[kind], data) for kind, data in self.metadata.items())
        header = (
            MAGIC
            + struct.pack(">BB", METADATA_VERSION if entries else VERSION, len(name)) + name
            + self.weights_hash
            + struct.pack(">IIBHB", self.width, self.height, layout, NO_QUALITY if self.quality is None else self.quality,
                          len(self.streams))
            + b"".join(struct.pack(">I", len(s)) for s in self.streams)
        )
        if entries:
            header += struct.pack(">B", len(entries)) + b"".join(struct.pack(">BI", code, len(data)) for code, data in entries)
        body = header + b"".join(self.streams) + b"".join(data for _, data in entries)
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitstream:
        reader = _Reader(data)
        if reader.take(len(MAGIC), "magic") != MAGIC:
            raise BitstreamError("not a codec file (bad magic bytes)")
        version = reader.unpack(">B", "format version")
        if version not in READABLE_VERSIONS:
            raise BitstreamError(f"unsupported format version {version} (this decoder reads versions 1 to 3)")
        name = reader.take(reader.unpack(">B", "model name length"), "model name")
        weights_hash = reader.take(HASH_BYTES, "weights hash")
        if version == 1:
            (width, height, layout, count), quality = reader.unpack(">IIBB", "image header"), NO_QUALITY
        else:
            width, height, layout, quality, count = reader.unpack(">IIBHB", "image header")
        lengths = [reader.unpack(">I", "stream lengths") for _ in range(count)]
        entries = []
        if version == METADATA_VERSION:
            entries = [reader.unpack(">BI", "metadata lengths") for _ in range(reader.unpack(">B", "metadata count"))]
        expected = reader.offset + sum(lengths) + sum(length for _, length in entries) + 4
        if len(data) < expected:
            raise BitstreamError(f"truncated file: {len(data)} bytes, the header announces {expected}")
        if len(data) > expected:
            raise BitstreamError(f"{len(data) - expected} unexpected bytes after the end of the stream")
        (crc,) = struct.unpack(">I", data[-4:])
        if zlib.crc32(data[:-4]) != crc:
            raise BitstreamError("corrupted file (CRC32 mismatch)")
        streams = tuple(reader.take(length, "stream") for length in lengths)
        metadata = {METADATA_KINDS.get(code): reader.take(length, "metadata") for code, length in entries}
        codes = [code for code, _ in entries]
        if version == METADATA_VERSION and (not codes or codes != sorted(set(codes)) or None in metadata):
            raise BitstreamError(f"corrupted file (metadata entries of kinds {codes}: expected 1 to 3 of 1-3, ascending)")
        _check_metadata(metadata)
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
        return cls(model, weights_hash, width, height, LAYOUTS[layout], streams, None if quality == NO_QUALITY else quality, metadata)


def _check_metadata(metadata: dict[str, bytes]) -> None:
    """The entries' outward form (an ICC profile's header, EXIF's TIFF byte order mark, XMP's UTF-8);
    that they parse is checked where images are built (codec.image.check_metadata)."""
    icc, exif, xmp = (metadata.get(kind) for kind in ("icc", "exif", "xmp"))
    if icc is not None and (len(icc) < 128 or struct.unpack(">I", icc[:4])[0] != len(icc) or icc[36:40] != b"acsp"):
        raise BitstreamError("corrupted file (its ICC profile has no valid header)")
    if exif is not None and exif[:4] not in (b"II*\0", b"MM\0*"):
        raise BitstreamError("corrupted file (its EXIF does not start with a TIFF header)")
    if xmp is not None:
        try:
            xmp.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError("corrupted file (its XMP is not UTF-8 text)")


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
