"""Generated content that photos rarely hold: flat saturated colours and greys, smooth gradients,
stripes and gratings, sharp edges, text-like glyphs and fine noise.

Training mixes a share of such crops in (`codec train --synthetic`), so that the transforms learn to
reconstruct what natural photos seldom teach them; benchmarks/ceiling.py scores a model on the fixed
`reference_patterns`. Every image is a float tensor (3, size, size) in [0, 1].
"""

from __future__ import annotations

import math

import torch

KINDS = ("flat", "gradient", "grating", "edges", "glyphs", "noise")


def _uniform(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def random_colour(generator: torch.Generator) -> torch.Tensor:
    """An RGB colour (3,): half the time saturated (each channel near 0 or 1, or mid), a quarter a grey,
    a quarter anything."""
    kind = float(_uniform(generator, 1))
    if kind < 0.5:
        levels = torch.tensor([0.0, 0.08, 0.5, 0.92, 1.0])
        colour = levels[torch.randint(len(levels), (3,), generator=generator)] + (_uniform(generator, 3) - 0.5) * 0.1
    elif kind < 0.75:
        colour = _uniform(generator, 1).repeat(3)
    else:
        colour = _uniform(generator, 3)
    return colour.clamp(0, 1)


def _coordinates(size: int, angle: float) -> torch.Tensor:
    """Each pixel's distance along the direction `angle` (radians), in pixels: (size, size)."""
    rows, columns = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    return columns * math.cos(angle) + rows * math.sin(angle)


def _blend(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a where t is 0, b where it is 1: (3, size, size) from colours (3,) and a map (size, size)."""
    return a[:, None, None] * (1 - t) + b[:, None, None] * t


def flat(size: int, colour: torch.Tensor) -> torch.Tensor:
    return colour[:, None, None].expand(3, size, size).clone()


def gradient(size: int, a: torch.Tensor, b: torch.Tensor, angle: float) -> torch.Tensor:
    """A linear ramp from colour a to colour b across the image."""
    d = _coordinates(size, angle)
    return _blend(a, b, (d - d.min()) / (d.max() - d.min()))


def grating(size: int, a: torch.Tensor, b: torch.Tensor, period: float, angle: float, square: bool) -> torch.Tensor:
    """Stripes between colours a and b, `period` pixels, sinusoidal or square."""
    wave = torch.cos(2 * math.pi * _coordinates(size, angle) / period)
    return _blend(a, b, (wave > 0).float() if square else (wave + 1) / 2)


def edges(size: int, colours: list[torch.Tensor], angles: list[float], offsets: list[float]) -> torch.Tensor:
    """Flat regions cut by sharp straight edges: each half-plane past an edge takes the next colour."""
    image = flat(size, colours[0])
    for colour, angle, offset in zip(colours[1:], angles, offsets):
        distance = _coordinates(size, angle)
        inside = (distance - distance.mean() > offset * size).float()
        image = image * (1 - inside) + colour[:, None, None] * inside
    return image


def glyphs(size: int, ink: torch.Tensor, paper: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rows of text-like strokes: thin bars and boxes of ink, a few pixels wide, on paper."""
    mask = torch.zeros(size, size)
    line_height = int(torch.randint(8, 20, (1,), generator=generator))
    for top in range(2, size - line_height, line_height + int(torch.randint(2, 8, (1,), generator=generator))):
        left = 2
        while left < size - 4:
            width = int(torch.randint(3, line_height, (1,), generator=generator))
            stroke = int(torch.randint(1, max(2, line_height // 5), (1,), generator=generator))
            bottom, right = top + line_height - int(torch.randint(0, line_height // 3 + 1, (1,), generator=generator)), min(size, left + width)
            shape = int(torch.randint(4, (1,), generator=generator))
            if shape == 0:  # a vertical stem
                mask[top:bottom, left:left + stroke] = 1
            elif shape == 1:  # a box
                mask[top:bottom, left:right] = 1
                mask[top + stroke:bottom - stroke, left + stroke:right - stroke] = 0
            elif shape == 2:  # a horizontal bar
                middle = (top + bottom) // 2
                mask[middle:middle + stroke, left:right] = 1
            else:  # a diagonal
                for i in range(bottom - top):
                    column = left + i * (right - left) // max(1, bottom - top)
                    mask[top + i, column:column + stroke] = 1
            left = right + int(torch.randint(1, 6, (1,), generator=generator))
    return _blend(paper, ink, mask)


def noise(size: int, colour: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """A flat colour with fine Gaussian noise of standard deviation `strength`."""
    return (flat(size, colour) + strength * torch.randn(3, size, size, generator=generator)).clamp(0, 1)


def random_image(size: int, generator: torch.Generator) -> torch.Tensor:
    """One generated image of a kind drawn uniformly from KINDS, with random colours and geometry."""
    kind = KINDS[int(torch.randint(len(KINDS), (1,), generator=generator))]
    a, b = random_colour(generator), random_colour(generator)
    angle = float(_uniform(generator, 1)) * math.pi
    if kind == "flat":
        return flat(size, a)
    if kind == "gradient":
        return gradient(size, a, b, angle)
    if kind == "grating":
        period = 2 ** (1 + 4 * float(_uniform(generator, 1)))  # 2 to 32 pixels
        return grating(size, a, b, period, angle, square=bool(_uniform(generator, 1) < 0.5))
    if kind == "edges":
        count = int(torch.randint(1, 4, (1,), generator=generator))
        colours = [a, b] + [random_colour(generator) for _ in range(count - 1)]
        angles = [float(_uniform(generator, 1)) * 2 * math.pi for _ in range(count)]
        return edges(size, colours, angles, [float(_uniform(generator, 1)) * 0.6 - 0.3 for _ in range(count)])
    if kind == "glyphs":
        return glyphs(size, a, b, generator)
    return noise(size, a, 0.02 + 0.15 * float(_uniform(generator, 1)), generator)


def reference_patterns(size: int = 256) -> dict[str, torch.Tensor]:
    """The fixed patterns a model is scored on: named, deterministic."""
    c = lambda *rgb: torch.tensor(rgb, dtype=torch.float32) / 255  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    patterns = {
        "flat green (20,200,40)": flat(size, c(20, 200, 40)),
        "flat red (200,30,60)": flat(size, c(200, 30, 60)),
        "flat blue (30,40,220)": flat(size, c(30, 40, 220)),
        "flat yellow (250,220,10)": flat(size, c(250, 220, 10)),
        "flat grey 32": flat(size, c(32, 32, 32)),
        "flat grey 128": flat(size, c(128, 128, 128)),
        "flat grey 224": flat(size, c(224, 224, 224)),
        "gradient grey": gradient(size, c(0, 0, 0), c(255, 255, 255), 0.0),
        "gradient colour": gradient(size, c(255, 40, 0), c(0, 80, 255), math.pi / 5),
        "grating 2 px": grating(size, c(0, 0, 0), c(255, 255, 255), 2, 0.0, square=True),
        "grating 4 px 30°": grating(size, c(20, 20, 20), c(235, 235, 235), 4, math.pi / 6, square=False),
        "grating 8 px 45°": grating(size, c(200, 30, 60), c(20, 200, 40), 8, math.pi / 4, square=False),
        "grating 16 px": grating(size, c(0, 0, 0), c(255, 255, 255), 16, math.pi / 2, square=True),
        "edges": edges(size, [c(250, 250, 250), c(10, 10, 10), c(220, 30, 30)], [0.3, 2.0], [0.1, -0.15]),
        "glyphs": glyphs(size, c(10, 10, 10), c(250, 250, 245), generator),
        "noise": noise(size, c(128, 128, 128), 0.08, generator),
    }
    return patterns
