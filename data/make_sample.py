"""Draws data/sample.png, the project's own sample image (no third-party pixels).

A synthetic landscape with what makes natural images hard to code: smooth gradients, sharp edges,
fine texture at several scales and saturated colour. Deterministic: the same bytes on every run.

    python data/make_sample.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 640, 424


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 6) -> np.ndarray:
    """Sum of upsampled random grids, each octave twice as fine and half as strong; in [0, 1]."""
    total = np.zeros((height, width))
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells + 1, cells + 1))
        layer = Image.fromarray((grid * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        total += np.asarray(layer, dtype=np.float64) / 255 * 0.5**octave
    total -= total.min()
    return total / total.max()


def draw(path: Path) -> None:
    rng = np.random.default_rng(2026)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH] / np.array([HEIGHT, WIDTH])[:, None, None]
    sky = np.stack([0.35 + 0.5 * y, 0.55 + 0.35 * y, 0.95 - 0.2 * y], axis=-1)
    clouds = fractal_noise(rng, HEIGHT, WIDTH)[..., None]
    image = sky * (1 - 0.35 * clouds) + 0.35 * clouds
    sun = np.exp(-(((x - 0.75) * 4) ** 2 + ((y - 0.25) * 6) ** 2))[..., None]
    image = image * (1 - sun) + np.array([1.0, 0.9, 0.6]) * sun
    for depth, (base, colour) in enumerate([(0.55, (0.35, 0.45, 0.3)), (0.7, (0.2, 0.4, 0.15)), (0.85, (0.3, 0.25, 0.1))]):
        ridge = base + 0.08 * np.sin(x[0] * (5 + 3 * depth) + depth) + 0.04 * fractal_noise(rng, 1, WIDTH, 5)[0]
        below = y >= ridge[None, :]
        texture = fractal_noise(rng, HEIGHT, WIDTH)[..., None] * 0.5 + 0.75
        image = np.where(below[..., None], np.array(colour) * texture, image)
    canvas = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(canvas)
    pen.rectangle([60, 250, 170, 330], fill=(180, 40, 30), outline=(20, 20, 20), width=3)
    pen.polygon([(50, 250), (115, 200), (180, 250)], fill=(90, 30, 20))
    for i in range(9):
        pen.rectangle([75 + i * 10, 270, 80 + i * 10, 300], fill=(240, 220, 120) if i % 2 else (40, 40, 60))
    pen.ellipse([420, 300, 560, 400], fill=(30, 70, 160), outline=(250, 250, 250), width=2)
    for k in range(0, 120, 6):
        pen.line([(560 + k // 3, 300), (520 + k, 420)], fill=(250, 250, 250) if k % 12 else (10, 10, 10), width=1)
    canvas = canvas.filter(ImageFilter.GaussianBlur(0.6))
    canvas.save(path, optimize=True)


if __name__ == "__main__":
    draw(Path(__file__).with_name("sample.png"))
