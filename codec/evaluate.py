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


def pooled_bpp(rows: list[dict]) -> float:
    """The bits of all the files over the pixels of all the images (rows of bytes and bpp): a 1x1
    image weighs one pixel, where a mean of per-image bpp would let it outweigh a photo."""
    return 8 * sum(row["bytes"] for row in rows) / sum(row["bytes"] * 8 / row["bpp"] for row in rows)


def summarize(rows: list[dict]) -> dict:
    """bpp over all pixels (pooled_bpp), and means over images of the rest (MS-SSIM over the images
    large enough to have one)."""
    summary = {"bpp": pooled_bpp(rows), **{key: float(np.mean([row[key] for row in rows])) for key in ("psnr", "encode_s", "decode_s")}}
    scored = [row["ms_ssim"] for row in rows if row["ms_ssim"] is not None]
    summary["ms_ssim"] = float(np.mean(scored)) if scored else None
    summary["images"] = len(rows)
    return summary
