"""Hostile-input fuzzing of the decoder: every damaged file must end in a clean CodecError or a
decoded image of the declared size, never another exception, a hang or unbounded memory.

Mutations of a real file: truncation at every offset, bit flips (caught by the CRC), bit flips and
random payloads with the CRC recomputed (so that they reach the entropy decoder), headers with
random, often huge, dimensions, and, in a file that carries metadata, bit flips in it with the CRC
recomputed. A decoded image must also be writable, metadata and all, as PNG and TIFF.
"""

from __future__ import annotations

import io
import random
import time
import warnings
from collections import Counter
from dataclasses import replace

from codec.api import decompress
from codec.bitstream import Bitstream
from codec.errors import CodecError
from codec.image import save_image


def mutations(data: bytes, count: int, seed: int = 0):
    """Yield (kind, bytes): all truncations of `data`, then `count` random mutations."""
    for end in range(len(data)):
        yield "truncate", data[:end]
    rng = random.Random(seed)
    original = Bitstream.from_bytes(data)
    kinds = ["flip", "flip-valid-crc", "payload-valid-crc", "dimensions-valid-crc"] + ["metadata-valid-crc"] * bool(original.metadata)
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind == "flip":
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            yield kind, bytes(damaged)
        elif kind == "flip-valid-crc":
            streams = [bytearray(s) for s in original.streams]
            target = streams[rng.randrange(len(streams))]
            for _ in range(rng.randint(1, 8)):
                if target:
                    target[rng.randrange(len(target))] ^= 1 << rng.randrange(8)
            yield kind, replace(original, streams=tuple(bytes(s) for s in streams)).to_bytes()
        elif kind == "payload-valid-crc":
            streams = tuple(rng.randbytes(rng.choice([0, 1, 7, 64, 1024])) for _ in original.streams)
            yield kind, replace(original, streams=streams).to_bytes()
        elif kind == "metadata-valid-crc":
            metadata = {name: bytearray(data) for name, data in original.metadata.items()}
            target = metadata[rng.choice(sorted(metadata))]
            for _ in range(rng.randint(1, 8)):
                target[rng.randrange(len(target))] ^= 1 << rng.randrange(8)
            yield kind, replace(original, metadata={name: bytes(data) for name, data in metadata.items()}).to_bytes()
        else:
            width = rng.choice([1, 2, 63, 65, 1000, 65535, 65536, 100000, 2**32 - 1])
            height = rng.choice([1, 3, 64, 999, 65535, 100000, 2**32 - 1])
            yield kind, replace(original, width=width, height=height).to_bytes()


def coded_pixels(width: int, height: int, multiple: int = 64) -> int:
    """The area the decoder works on: the image padded to the models' largest multiple."""
    return -(-width // multiple) * multiple * (-(-height // multiple) * multiple)


def fuzz(data: bytes, count: int, seed: int = 0, max_pixels: int = 4096 * 4096) -> Counter:
    """Decode every mutation; count the outcomes. Headers that pass the container's checks but make
    the decoder work on more than `max_pixels` (padded) are only parsed: decoding them is legitimate,
    just slow (65535x1 decodes a 65536x64 canvas)."""
    outcomes = Counter()
    for kind, damaged in mutations(data, count, seed):
        outcomes["inputs"] += 1
        start = time.perf_counter()
        try:
            header = Bitstream.from_bytes(damaged)
            if coded_pixels(header.width, header.height) > max_pixels:
                outcomes["valid header, too large to decode here"] += 1
                continue
            image = decompress(damaged)
            assert image.size == (header.width, header.height)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's words on damaged EXIF, which it still writes
                for kind in ("PNG", "TIFF"):
                    save_image(image, io.BytesIO(), kind)
            outcomes["decoded (garbage allowed)"] += 1
        except CodecError:
            outcomes["clean error"] += 1
        except Exception as error:  # noqa: BLE001 - exactly what the fuzzer looks for
            outcomes[f"crash: {kind}: {error.__class__.__name__}: {error}"] += 1
        outcomes["slowest ms"] = max(outcomes["slowest ms"], round(1000 * (time.perf_counter() - start)))
    return outcomes
