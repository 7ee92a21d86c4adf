"""Tiled against whole-image coding: size, PSNR, and a picture of the tile boundaries.

Codes an image twice with the shipped default model: in one piece, and with tiles shrunk far below
the codec's own (128 pixels for g_a, 8 latents = 128 pixels for g_s, 2 hyper-latents for h_s), so
that the image crosses many tile boundaries. Reports both files' sizes and PSNRs, the largest pixel
difference, and writes a figure: the tiled decoding with its tile grid marked beside it, and the
difference between the two decodings amplified 32 times.

    python benchmarks/tiling.py data/sample.png --figure docs/tiling.png
"""

import argparse

import numpy as np
from PIL import Image, ImageDraw

import codec
from codec.image import open_image
from codec.metrics import psnr
from codec.models import coding

SMALL_TILES = {"WHOLE_PIXELS": 0, "ANALYSIS_TILE": 128, "SYNTHESIS_TILE": 8, "HYPER_TILE": 2}


def coded(image: Image.Image, tiles: dict) -> tuple[bytes, Image.Image]:
    """(file, decoding) with coding's tile sizes (models/coding.py) set to `tiles` for the while."""
    saved = {name: getattr(coding, name) for name in tiles}
    for name, value in tiles.items():
        setattr(coding, name, value)
    try:
        data = codec.compress(image)
        return data, codec.decompress(data)
    finally:
        for name, value in saved.items():
            setattr(coding, name, value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--figure", help="where to write the figure (PNG)")
    args = parser.parse_args()
    image = open_image(args.image)
    whole_data, whole = coded(image, {})
    tiled_data, tiled = coded(image, SMALL_TILES)
    difference = np.abs(np.asarray(whole, dtype=np.int16) - np.asarray(tiled, dtype=np.int16))
    print(f"whole image: {len(whole_data):,} bytes, PSNR {psnr(image, whole):.3f} dB")
    print(f"tiled:       {len(tiled_data):,} bytes, PSNR {psnr(image, tiled):.3f} dB "
          f"(tiles of {SMALL_TILES['ANALYSIS_TILE']} px)")
    print(f"decodings differ in {np.count_nonzero(difference.max(axis=2))} of {image.width * image.height} pixels, "
          f"by at most {difference.max()} levels; PSNR of tiled against whole {psnr(whole, tiled):.2f} dB")
    if args.figure:
        marked = tiled.convert("RGB")
        draw = ImageDraw.Draw(marked)
        step = SMALL_TILES["ANALYSIS_TILE"]
        for x in range(step, image.width, step):
            draw.line([(x, 0), (x, image.height)], fill=(255, 0, 255))
        for y in range(step, image.height, step):
            draw.line([(0, y), (image.width, y)], fill=(255, 0, 255))
        amplified = Image.fromarray(np.clip(difference * 32, 0, 255).astype(np.uint8))
        figure = Image.new("RGB", (3 * image.width + 16, image.height), "white")
        for index, panel in enumerate((tiled.convert("RGB"), marked, amplified)):
            figure.paste(panel, (index * (image.width + 8), 0))
        figure.save(args.figure, optimize=True)
        print(f"figure: {args.figure} (tiled decoding | the same with the tile grid | |whole - tiled| x 32)")


if __name__ == "__main__":
    main()
