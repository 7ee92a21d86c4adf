"""Where a variable-rate model's bits go: the latent y's stream against the hyper-latent z's, by quality.

Every image is coded at each quality (effort 0) and y's streams and z's (the last) are measured apart; per quality:
the mean bpp of each and z's share of the streams. z is computed from y before the rate's gain, so
its stream does not change with the quality: the hyperprior's side information is fixed per image.

    python benchmarks/side_information.py ../shared/data/kodak [--qualities 0,32,100] [--model vr2]
"""

import argparse

import torch

from codec.api import rate_position
from codec.fileio import image_files
from codec.image import open_image, to_tensor
from codec.registry import default_card, get_card, load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images (Kodak)")
    parser.add_argument("--qualities", default="0,32,100")
    parser.add_argument("--model", default=None, help="a variable-rate model (default: the default one)")
    args = parser.parse_args()
    card = get_card(args.model) if args.model else default_card()
    if not card.variable_rate:
        parser.error(f"{card.name} is not a variable-rate model")
    net = load_model(card)
    qualities = [float(q) for q in args.qualities.split(",")]
    images = [open_image(path) for path in image_files(args.images)]
    print(f"{card.name} on {len(images)} images\n| quality | y (bpp) | z (bpp) | z's share |\n|---|---|---|---|")
    for quality in qualities:
        y_bits = z_bits = pixels = 0
        for image in images:
            with torch.inference_mode():
                *y_strings, z_string = net.compress(to_tensor(image, net.downsampling), rate_position(net, round(quality * 100)))
            y_bits, z_bits = y_bits + 8 * sum(map(len, y_strings)), z_bits + 8 * len(z_string)
            pixels += image.width * image.height
        print(f"| {quality:g} | {y_bits / pixels:.4f} | {z_bits / pixels:.4f} | {100 * z_bits / (y_bits + z_bits):.1f} % |")


if __name__ == "__main__":
    main()
