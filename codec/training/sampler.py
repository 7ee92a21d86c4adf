"""What a training step learns from: random crops of the training images (some generated, some
downscaled), and for a variable-rate model the rate each crop trains at."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from codec.errors import CodecError
from codec.fileio import image_files
from codec.synthetic import random_image
from codec.training.config import data_folders


class CropSampler:
    """Random crops from images held as uint8 on the training device, picked in proportion to their
    area: no JPEG decoding and no host-to-device copy per step. The picks are drawn on the host's
    generator, so a step asks nothing back of a GPU. A `synthetic` share of the crops is generated
    instead (codec.synthetic), and a `downscale` share is cut from a region up to twice the crop's
    side and shrunk to it with antialiasing, so that camera noise and JPEG artifacts wash out."""

    def __init__(self, data: str, crop: int, device: torch.device = torch.device("cpu"), synthetic: float = 0.0,
                 downscale: float = 0.0):
        self.crop, self.device, self.synthetic, self.downscale = crop, device, synthetic, downscale
        self.images = []
        for folder in data_folders(data):
            for path in image_files(folder):
                with Image.open(path) as image:
                    array = np.asarray(image.convert("RGB"))
                if min(array.shape[:2]) >= crop:
                    self.images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).to(device))
        if not self.images:
            raise CodecError(f"{data}: no image is at least {crop}x{crop}")
        areas = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float64)
        self.weights = areas / areas.sum()

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        picks = torch.multinomial(self.weights, size, replacement=True, generator=generator)
        crops = []
        for index in picks.tolist():
            if self.synthetic and torch.rand(1, generator=generator) < self.synthetic:
                crops.append(random_image(self.crop, generator).to(self.device))
                continue
            image = self.images[index]
            side = self.crop
            if self.downscale and torch.rand(1, generator=generator) < self.downscale:
                side = min(int(self.crop * 2 ** float(torch.rand(1, generator=generator))), *image.shape[1:])
            top = int(torch.randint(image.shape[1] - side + 1, (1,), generator=generator))
            left = int(torch.randint(image.shape[2] - side + 1, (1,), generator=generator))
            crop = image[:, top : top + side, left : left + side].float().div_(255)
            if side != self.crop:
                crop = F.interpolate(crop[None], size=self.crop, mode="bilinear", antialias=True)[0].clamp_(0, 1)
            if torch.rand(1, generator=generator) < 0.5:
                crop = crop.flip(2)
            crops.append(crop)
        return torch.stack(crops)


def rate_positions(count: int, anchors: int, bias: float, generator: torch.Generator) -> torch.Tensor:
    """`count` rate positions over the anchors' span [0, anchors - 1], with density proportional to
    position^bias: uniform at 0, toward the high rates above (whose transforms set the quality ceiling)."""
    return torch.rand(count, generator=generator).pow_(1 / (1 + bias)).mul_(anchors - 1)
