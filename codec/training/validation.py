"""Validation during a run: bpp and PSNR of the forward pass in the coding forms on whole images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from codec.image import to_tensor
from codec.training.losses import likelihood_bpp


@torch.no_grad()
def validate(model, images: list[tuple[torch.Tensor, int, int]]) -> dict:
    """Mean bpp (from likelihoods) and PSNR of the model's `coding_estimate` in eval mode (rounded
    latents, the transforms as coding runs them) on whole images, each given padded to the model's
    multiple with its true height and width. A variable-rate model is scored at its lowest, middle
    and highest anchors (val_bpp@P, val_psnr@P for each position P)."""
    model.eval()
    anchors = getattr(model, "anchors", None)
    positions = [None] if anchors is None else [0, (anchors - 1) // 2, anchors - 1]
    metrics = {}
    for position in positions:
        bpps, psnrs = [], []
        for x, h, w in images:
            rate = None if position is None else torch.tensor([float(position)], device=x.device)
            out = model.coding_estimate(x, rate)
            x_hat = out["x_hat"][..., :h, :w].clamp(0, 1)
            bpps.append(float(likelihood_bpp(out["likelihoods"], h * w)))
            psnrs.append(float(-10 * torch.log10(F.mse_loss(x_hat, x[..., :h, :w]))))
        suffix = "" if position is None else f"@{position}"
        metrics.update({f"val_bpp{suffix}": float(np.mean(bpps)), f"val_psnr{suffix}": float(np.mean(psnrs))})
    model.train()
    return metrics


def load_validation(paths: list[Path], multiple: int, device: torch.device) -> list[tuple[torch.Tensor, int, int]]:
    """Validation images as `validate` takes them: padded tensors with their true height and width."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append((to_tensor(image, multiple).to(device), image.height, image.width))
    return images
