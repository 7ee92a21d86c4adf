"""Measuring a codec on a set of images through real files: every byte counts, header included."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from codec.api import compress, decompress
from codec.image import open_image
from codec.metrics import bits_per_pixel, ms_ssim, psnr


def measure(path: Path, model: str) -> dict:
    """bpp of the file, PSNR-RGB, MS-SSIM and coding times of one image."""
    reference = open_image(path)
    return {"image": Path(path).name, **measure_coded(reference, lambda image: compress(image, model=model), decompress)}


def measure_coded(reference: Image.Image, encode: Callable[[Image.Image], bytes],
                  decode: Callable[[bytes], Image.Image]) -> dict:
    """The same measures for any codec given as encode(image) -> bytes and decode(bytes) -> image."""
    start = time.perf_counter()
    data = encode(reference)
    encoded = time.perf_counter()
    decoded = decode(data)
    decode_seconds = time.perf_counter() - encoded
    return {
        "bytes": len(data),
        "bpp": bits_per_pixel(len(data), reference),
        "psnr": psnr(reference, decoded),
        "ms_ssim": ms_ssim(reference, decoded),
        "encode_s": encoded - start,
        "decode_s": decode_seconds,
    }


def summarize(rows: list[dict]) -> dict:
    """Means over images (MS-SSIM over the images large enough to have one)."""
    summary = {key: float(np.mean([row[key] for row in rows])) for key in ("bpp", "psnr", "encode_s", "decode_s")}
    scored = [row["ms_ssim"] for row in rows if row["ms_ssim"] is not None]
    summary["ms_ssim"] = float(np.mean(scored)) if scored else None
    summary["images"] = len(rows)
    return summary
