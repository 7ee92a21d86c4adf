"""Quality and rate measures, on 8-bit images as they are written to disk."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

# pytorch-msssim's five scales with an 11-pixel window need the smaller side above (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def psnr(reference: Image.Image, decoded: Image.Image) -> float:
    """PSNR-RGB in dB: 10 log10(255^2 / MSE) with the MSE over all pixels and channels. Summed
    exactly in integers, a band of rows at a time: large images need no float copies."""
    a, b = (np.asarray(image.convert("RGB")) for image in (reference, decoded))
    squared = sum(int(np.square(a[row : row + 256].astype(np.int32) - b[row : row + 256]).sum(dtype=np.int64))
                  for row in range(0, a.shape[0], 256))
    return math.inf if squared == 0 else 10 * math.log10(255.0**2 * a.size / squared)


def ms_ssim(reference: Image.Image, decoded: Image.Image) -> float | None:
    """MS-SSIM on RGB (pytorch-msssim); None for images too small for its five scales."""
    if min(reference.size) < MS_SSIM_MIN_SIDE:
        return None
    import torch  # here: PSNR and bpp, which compress reports, need neither torch nor pytorch-msssim
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = (torch.from_numpy(_rgb(im)).permute(2, 0, 1)[None].float() for im in (reference, decoded))
    return float(_ms_ssim(a, b, data_range=255.0))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the customary dB scale, -10 log10(1 - MS-SSIM)."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def bits_per_pixel(num_bytes: int, image: Image.Image) -> float:
    return num_bytes * 8 / (image.width * image.height)
