"""Our compress/decompress against CompressAI's own, same architecture and same weights.

Loads a registered mean-scale model (default: the shipped default) into CompressAI's
MeanScaleHyperprior too, then on each image alternates: our model.compress / model.decompress, and
CompressAI's net.compress / net.decompress. Reports median times, their ratio, and checks that the
two produce the same number of bits (to 1 %) and the same PSNR (to 0.01 dB). Pause other work first:
timings on 2 cores are only comparable within one run.

    python benchmarks/speed.py ../shared/data/kodak [--model NAME] [--repeat 3]
"""

import argparse
import re
import statistics
import time

import torch
from compressai.models import MeanScaleHyperprior as ReferenceModel

from codec.api import pad_to_multiple
from codec.fileio import image_files
from codec.image import open_image, to_image, to_tensor
from codec.metrics import psnr
from models.registry import card_for_quality, get_card, load_model


def reference_copy(model) -> ReferenceModel:
    """CompressAI's model with our weights: our hyper transforms hold Identity placeholders for the
    optional attention blocks, so their layer indices are renumbered."""
    renumber = {"0": "0", "3": "2", "6": "4"}
    state = {re.sub(r"^(h_[as])\.(\d+)\.", lambda m: f"{m[1]}.{renumber[m[2]]}.", k): v for k, v in model.state_dict().items()}
    net = ReferenceModel(model.N, model.M)
    net.load_state_dict(state)
    net.update(force=True)
    return net.eval()


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("--model", help="registered mean-scale model (default: the shipped default)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ours = load_model(get_card(args.model) if args.model else card_for_quality(None))
    reference = reference_copy(ours)
    times = {key: [] for key in ("ours encode", "ours decode", "compressai encode", "compressai decode")}
    for path in image_files(args.images):
        image = open_image(path)
        x = pad_to_multiple(to_tensor(image), ours.downsampling)
        height, width = x.shape[-2:]
        with torch.inference_mode():
            for _ in range(args.repeat):
                strings, t = timed(lambda: ours.compress(x))
                times["ours encode"].append(t)
                x_ours, t = timed(lambda: ours.decompress(strings, height, width))
                times["ours decode"].append(t)
                coded, t = timed(lambda: reference.compress(x))
                times["compressai encode"].append(t)
                decoded, t = timed(lambda: reference.decompress(coded["strings"], coded["shape"]))
                times["compressai decode"].append(t)
        crop = (slice(None), slice(None), slice(0, image.height), slice(0, image.width))
        ours_bits = 8 * sum(len(s) for s in strings)
        reference_bits = 8 * sum(len(s[0]) for s in coded["strings"])
        ours_psnr = psnr(image, to_image(x_ours[crop], "RGB"))
        reference_psnr = psnr(image, to_image(decoded["x_hat"][crop], "RGB"))
        same = abs(ours_bits / reference_bits - 1) < 0.01 and abs(ours_psnr - reference_psnr) < 0.01
        print(f"{path.name}: bits {ours_bits} vs {reference_bits}, PSNR {ours_psnr:.3f} vs {reference_psnr:.3f}"
              f"{'' if same else '  <- RD differs'}")
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key, value in medians.items():
        print(f"{key:18s} {value:.3f} s (median)")
    ratio = (medians["ours encode"] + medians["ours decode"]) / (medians["compressai encode"] + medians["compressai decode"])
    print(f"encode+decode, ours / CompressAI: {ratio:.2f}")


if __name__ == "__main__":
    main()
