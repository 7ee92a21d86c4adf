"""Measuring a codec on a set of images through real files: every byte counts, header included.

Nothing here loads a model: the worker processes that measure the Pillow baselines (`codec eval`)
import this module and start without CompressAI.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from codec import baselines as pillow
from codec.errors import ConversionWarning
from codec.image import open_image
from codec.metrics import bits_per_pixel, ms_ssim, psnr


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


def measure_baseline(job: tuple[str, int, Path]) -> tuple[dict, tuple[str, ...]]:
    """measure_coded of a (baseline, setting, image path), and the notes of the image's conversion,
    which a worker process would otherwise print as raw warnings."""
    baseline, setting, path = job
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        result = measure_coded(open_image(path), lambda image: pillow.encode(image, baseline, setting), pillow.decode)
    return result, tuple(str(w.message) for w in caught if issubclass(w.category, ConversionWarning))


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
