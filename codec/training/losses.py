"""The rate-distortion losses: lambda * 255^2 * MSE + bpp (or lambda * (1 - MS-SSIM) + bpp), with
bpp taken from the entropy models' likelihoods, for one rate or for each crop at its own."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim


def likelihood_bpp(likelihoods: dict, num_pixels: int) -> torch.Tensor:
    """Bits per pixel as the entropy models estimate them, -log2 of every likelihood over `num_pixels`
    (codec.metrics.bits_per_pixel measures a file's bytes)."""
    return sum(torch.log(l).sum() for l in likelihoods.values()) / (-math.log(2) * num_pixels)


def rd_loss(output: dict, x: torch.Tensor, lmbda: float, metric: str) -> tuple[torch.Tensor, ...]:
    """(loss, bpp, mse) for a batch."""
    n, _, h, w = x.shape
    bpp = likelihood_bpp(output["likelihoods"], n * h * w)
    mse = F.mse_loss(output["x_hat"], x)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(output["x_hat"].clamp(0, 1), x, data_range=1.0)
    return lmbda * distortion + bpp, bpp, mse


# The variable-rate loss weighs each crop by (lambda / LOSS_REFERENCE)^-LOSS_EXPONENT, so that the low
# rates, whose losses are a hundred times smaller, still move the shared transforms.
LOSS_REFERENCE, LOSS_EXPONENT = 0.25, 0.6


def variable_rate_loss(output: dict, x: torch.Tensor, lambdas: torch.Tensor, metric: str) -> tuple[torch.Tensor, ...]:
    """(loss, bpp, mse) for a batch whose crops each have their own trade-off `lambdas` (N,)."""
    n, _, h, w = x.shape
    bpp = sum(torch.log(l).sum(dim=(1, 2, 3)) for l in output["likelihoods"].values()) / (-math.log(2) * h * w)
    mse = (output["x_hat"] - x).square().mean(dim=(1, 2, 3))
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(output["x_hat"].clamp(0, 1), x, data_range=1.0, size_average=False)
    weights = (lambdas / LOSS_REFERENCE).pow(-LOSS_EXPONENT)
    return (weights * (lambdas * distortion + bpp)).mean(), bpp.mean(), mse.mean()
