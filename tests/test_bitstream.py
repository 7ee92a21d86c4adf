"""The container: round trip, and a specific BitstreamError for every kind of damage."""

import re
import struct
import zlib
from dataclasses import replace

import pytest

from codec.bitstream import MAGIC, MAX_PIXELS, Bitstream
from codec.errors import BitstreamError

SAMPLE = Bitstream("ms-q3", bytes(range(8)), 37, 21, "RGB", (b"\x01\x02\x03" * 5, b"\xff\xee"))


def test_round_trip():
    assert Bitstream.from_bytes(SAMPLE.to_bytes()) == SAMPLE


ICC = struct.pack(">I", 132) + b"\0" * 32 + b"acsp" + b"\0" * 92  # an ICC profile's header: its size, its signature
WITH_METADATA = replace(SAMPLE, metadata={"icc": ICC, "exif": b"MM\0*\0\0\0\x08\0\0", "xmp": "<x:xmpmeta/> é".encode()})


def test_metadata_makes_a_version_3_file_and_round_trips():
    data = WITH_METADATA.to_bytes()
    assert SAMPLE.to_bytes()[4] == 2 and data[4] == 3  # a file without metadata stays version 2, byte for byte
    assert Bitstream.from_bytes(data) == WITH_METADATA
    assert len(data) - len(SAMPLE.to_bytes()) == 1 + 5 * 3 + sum(map(len, WITH_METADATA.metadata.values()))
    assert "icc of 132 bytes" in repr(WITH_METADATA)


def metadata_section(entries: list[tuple[int, bytes]]) -> bytes:
    """A version 3 file of SAMPLE whose metadata section holds these (kind, payload) entries as given."""
    header = bytearray(SAMPLE.to_bytes()[: -4 - sum(map(len, SAMPLE.streams))])
    header[4] = 3
    header += struct.pack(">B", len(entries)) + b"".join(struct.pack(">BI", kind, len(data)) for kind, data in entries)
    return with_crc(bytes(header) + b"".join(SAMPLE.streams) + b"".join(data for _, data in entries))


@pytest.mark.parametrize("entries, message", [
    ([], "metadata entries of kinds []"),
    ([(4, b"x")], "metadata entries of kinds [4]"),
    ([(2, b"MM\0*"), (1, ICC)], "metadata entries of kinds [2, 1]"),
    ([(3, b"a"), (3, b"b")], "metadata entries of kinds [3, 3]"),
    ([(1, ICC[:-1])], "its ICC profile has no valid header"),
    ([(1, ICC.replace(b"acsp", b"nope"))], "its ICC profile has no valid header"),
    ([(2, b"Exif\0\0MM\0*")], "its EXIF does not start with a TIFF header"),
    ([(3, b"\xff\xfe")], "its XMP is not UTF-8 text"),
])
def test_damaged_metadata_sections_are_refused(entries, message):
    with pytest.raises(BitstreamError, match=re.escape(message)):
        Bitstream.from_bytes(metadata_section(entries))
    assert Bitstream.from_bytes(metadata_section([(1, ICC), (3, b"<x/>")])).metadata == {"icc": ICC, "xmp": b"<x/>"}


def test_a_version_3_file_truncated_or_flipped_anywhere_is_refused():
    data = WITH_METADATA.to_bytes()
    for end in range(len(data)):
        with pytest.raises(BitstreamError, match="truncated|not a codec file|CRC"):
            Bitstream.from_bytes(data[:end])
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            Bitstream.from_bytes(bytes(damaged))


def test_grayscale_layout_round_trips():
    gray = Bitstream("m", b"\0" * 8, 1, 1, "L", (b"",))
    assert Bitstream.from_bytes(gray.to_bytes()).mode == "L"


def test_overhead_is_30_plus_name_plus_4_per_stream():
    data = SAMPLE.to_bytes()
    payload = sum(len(s) for s in SAMPLE.streams)
    assert len(data) - payload == 30 + len(SAMPLE.model) + 4 * len(SAMPLE.streams)


def test_quality_round_trips_in_hundredths():
    for quality in (0, 3750, 10000):
        stream = Bitstream("vr", b"\0" * 8, 5, 4, "RGB", (b"\1", b"\2"), quality)
        assert Bitstream.from_bytes(stream.to_bytes()).quality == quality


def test_quality_above_100_is_refused():
    data = bytearray(Bitstream("vr", b"\0" * 8, 5, 4, "RGB", (b"\1",), 10000).to_bytes())
    offset = 4 + 1 + 1 + 2 + 8 + 4 + 4 + 1
    data[offset : offset + 2] = struct.pack(">H", 10001)
    with pytest.raises(BitstreamError, match="quality 100.01 is outside 0-100"):
        Bitstream.from_bytes(with_crc(bytes(data[:-4])))


def test_version_1_files_still_read():
    """Version 1 (lic-codec 0.1) had no quality field: its files are one-rate models' and decode."""
    name = SAMPLE.model.encode()
    body = (MAGIC + struct.pack(">BB", 1, len(name)) + name + SAMPLE.weights_hash
            + struct.pack(">IIBB", SAMPLE.width, SAMPLE.height, 0, len(SAMPLE.streams))
            + b"".join(struct.pack(">I", len(s)) for s in SAMPLE.streams) + b"".join(SAMPLE.streams))
    assert Bitstream.from_bytes(with_crc(body)) == SAMPLE


def test_repr_is_short():
    assert len(repr(Bitstream("vr", b"\0" * 8, 5, 4, "RGB", (b"\1" * 100000,), 3000))) < 120


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_foreign_file():
    with pytest.raises(BitstreamError, match="not a codec file"):
        Bitstream.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)


def test_empty_file():
    with pytest.raises(BitstreamError, match="truncated"):
        Bitstream.from_bytes(b"")


def test_unknown_version():
    data = bytearray(SAMPLE.to_bytes())
    data[4] = 4
    with pytest.raises(BitstreamError, match="unsupported format version 4"):
        Bitstream.from_bytes(with_crc(bytes(data[:-4])))


def test_truncated_at_every_offset():
    data = SAMPLE.to_bytes()
    for end in range(len(data)):
        with pytest.raises(BitstreamError, match="truncated|not a codec file|CRC"):
            Bitstream.from_bytes(data[:end])


def test_trailing_bytes():
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        Bitstream.from_bytes(SAMPLE.to_bytes() + b"\0")


def test_every_single_bit_flip_is_caught():
    data = SAMPLE.to_bytes()
    for bit in range(len(data) * 8):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            Bitstream.from_bytes(bytes(damaged))


def test_crc_mismatch_names_corruption():
    data = bytearray(SAMPLE.to_bytes())
    data[-6] ^= 0x10  # inside the last stream
    with pytest.raises(BitstreamError, match="CRC32"):
        Bitstream.from_bytes(bytes(data))


@pytest.mark.parametrize("width, height", [(100000, 100000), (0, 5), (5, 0), (65536 * 2, 1), (16384, MAX_PIXELS // 16384 + 1)])
def test_impossible_dimensions_are_refused_before_decoding(width, height):
    data = Bitstream("m", b"\0" * 8, width, height, "RGB", (b"",)).to_bytes()
    with pytest.raises(BitstreamError, match="image size"):
        Bitstream.from_bytes(data)


def test_unknown_layout_and_non_ascii_name():
    body = MAGIC + bytes([1, 1]) + b"\xff" + b"\0" * 8 + struct.pack(">IIBB", 1, 1, 0, 0)
    with pytest.raises(BitstreamError, match="ASCII"):
        Bitstream.from_bytes(with_crc(body))
    body = MAGIC + bytes([1, 1]) + b"m" + b"\0" * 8 + struct.pack(">IIBB", 1, 1, 7, 0)
    with pytest.raises(BitstreamError, match="channel layout"):
        Bitstream.from_bytes(with_crc(body))
