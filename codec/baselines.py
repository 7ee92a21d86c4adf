"""The classical codecs we compare against, all through Pillow's own encoders, each with a sweep of
settings that spans the rates our models code at on photos (JPEG cannot reach the lowest).

    jpeg420   libjpeg(-turbo), 4:2:0 chroma, optimized Huffman tables, Pillow quality 2-85
    jpeg444   the same with full-resolution chroma, quality 2-80
    webp      libwebp lossy, method 6 (slowest, best), quality 0-90
    avif      libavif, speed 6, YUV 4:2:0 full range (Pillow's defaults), quality 0-85, one thread
    jpeg2000  OpenJPEG, RGB->YCbCr (mct), 9/7 irreversible wavelet, one layer at 480:1 to 12:1

Optimized Huffman tables (cjpeg -optimize) cost no quality and save JPEG bits; Pillow leaves them
off by default, which would flatter every other codec. AVIF in 4:4:4 measured no better than 4:2:0,
so we keep Pillow's 4:2:0. JPEG 2000 needs mct=1: Pillow's default codes R, G and B apart, far
worse. The figures behind these choices: docs/baselines.md.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import PIL
from PIL import Image

from codec.errors import CodecError


@dataclass(frozen=True)
class Baseline:
    name: str
    format: str
    label: str  # for tables and plots
    settings: tuple[int, ...]  # the sweep, low rate to high rate
    fixed: tuple[tuple[str, object], ...]  # encoder options besides the swept one
    swept: str  # the option the sweep sets

    def options(self, setting: int) -> dict:
        value = [setting] if self.swept == "quality_layers" else setting
        return {**dict(self.fixed), self.swept: value}

    def signature(self, setting: int) -> str:
        """What a cached result depends on besides the image: format, options and Pillow's version."""
        return f"{self.format} {sorted(self.options(setting).items())} Pillow {PIL.__version__}"


BASELINES = {
    b.name: b
    for b in (
        Baseline("jpeg420", "JPEG", "JPEG 4:2:0", (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 85),
                 (("subsampling", 2), ("optimize", True)), "quality"),
        Baseline("jpeg444", "JPEG", "JPEG 4:4:4", (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80),
                 (("subsampling", 0), ("optimize", True)), "quality"),
        Baseline("webp", "WEBP", "WebP (m6)", (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 87, 90),
                 (("method", 6),), "quality"),
        Baseline("avif", "AVIF", "AVIF (s6)", (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 85),
                 (("speed", 6), ("subsampling", "4:2:0"), ("max_threads", 1)), "quality"),
        Baseline("jpeg2000", "JPEG2000", "JPEG 2000", (480, 320, 200, 130, 96, 64, 48, 32, 24, 16, 12),
                 (("quality_mode", "rates"), ("mct", 1), ("irreversible", True)), "quality_layers"),
    )
}
GROUPS = {"jpeg": ("jpeg420", "jpeg444"), "all": tuple(BASELINES)}


def parse_baselines(text: str) -> list[str]:
    """"jpeg,webp" -> ["jpeg420", "jpeg444", "webp"]; "" or "none" -> []."""
    names = []
    for word in (w.strip().lower() for w in text.split(",")):
        if word in ("", "none"):
            continue
        if word not in BASELINES and word not in GROUPS:
            known = ", ".join([*GROUPS, *BASELINES])
            raise CodecError(f"unknown baseline {word!r} (known: {known}, or none)")
        names += [n for n in GROUPS.get(word, (word,)) if n not in names]
    return names


def encode(image: Image.Image, codec: str, setting: int) -> bytes:
    baseline = BASELINES[codec]
    buffer = io.BytesIO()
    image.save(buffer, baseline.format, **baseline.options(setting))
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
