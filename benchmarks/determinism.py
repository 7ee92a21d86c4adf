"""Bit-exact decoding across thread counts and summation orders, on a folder of images.

For every image and model: encode once, then decode with 2 threads, with 1 thread, and with the
hyper-synthesis summing its channels in another order (split_channel_sums, codec/summation.py); count the
decoded images that differ. The same is done for the plain float32 hyper path that the codec used
before (encode and decode with the float transform, the decoder in another order), counting the
symbols whose CDF index changed and the images that decode differently. Also reports what the exact
path costs: bits and PSNR against the float path.

    python benchmarks/determinism.py ../shared/data/kodak [--models vr2] [--quality 37.5]
"""

import argparse
import contextlib
import time

import numpy as np
import torch

from codec.api import compress, decompress, rate_position
from codec.fileio import image_files
from codec.image import open_image, to_tensor
from codec.metrics import psnr
from codec.models.tiling import blockwise
from codec.registry import SHIPPED_DIR, get_card, list_models, load_model
from codec.summation import split_channel_sums


@contextlib.contextmanager
def hyper_route(model, route):
    """Temporarily replace the hyper-synthesis that coding runs by `route(model, z_hat)`."""
    model.coding_hyper_synthesis = lambda z_hat: route(model, z_hat)
    try:
        yield
    finally:
        del model.coding_hyper_synthesis


def float_route(model, z_hat):
    """h_s in float32, in blocks where the model's hyperprior works in blocks."""
    if model.hyper_block:
        return blockwise(model.h_s, z_hat, model.hyper_block // 4, model.hyper_block)
    return model.h_s(z_hat)


def split_float_route(model, z_hat):
    with split_channel_sums():
        return float_route(model, z_hat)


def split_exact_route(model, z_hat):
    with split_channel_sums():
        return type(model).coding_hyper_synthesis(model, z_hat)


def hyper_latent(model, image) -> torch.Tensor:
    x = to_tensor(image, model.downsampling)
    with torch.inference_mode():
        z = model.hyper_analysis(model.g_a(x))
        return model.entropy_bottleneck.decompress(model.entropy_bottleneck.compress(z), z.shape[-2:])


def index_mismatches(model, z_hat, position: float | None) -> tuple[int, int]:
    """Symbols whose CDF index differs between the float route and the split float route."""
    indexes = []
    with torch.inference_mode():
        for route in (float_route, split_float_route):
            with hyper_route(model, route):
                scales, _ = model.coding_gaussian_params(z_hat)
            if position is not None:  # a variable-rate model's symbols have the gained scales
                scales = scales.double() * model.coding_gains(position)[0]
            indexes.append(model.scale_indexes(scales))
    return int((indexes[0] != indexes[1]).sum()), indexes[0].numel()


def hyper_seconds(model, z_hat) -> tuple[float, float]:
    """Time of the exact and of the float hyper-synthesis, alternated, best of three."""
    times = {"exact": [], "float": []}
    with torch.inference_mode():
        for _ in range(3):
            for label, run in (("exact", model.coding_hyper_synthesis), ("float", lambda z: float_route(model, z))):
                start = time.perf_counter()
                run(z_hat)
                times[label].append(time.perf_counter() - start)
    return min(times["exact"]), min(times["float"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images")
    parser.add_argument("--models", help="comma-separated model names (default: the shipped ones)")
    parser.add_argument("--quality", type=float, help="a variable-rate model's quality (default: its own)")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else [c.name for c in list_models() if c.directory == SHIPPED_DIR]
    files = image_files(args.images)
    totals = dict.fromkeys(["decodes", "exact mismatches", "float images differing", "float index mismatches", "symbols"], 0)
    costs, timings = [], []
    start = time.perf_counter()
    for name in names:
        card = get_card(name)
        model = load_model(card)
        quality = None if card.lmbda is not None else args.quality if args.quality is not None else card.default_quality
        position = None if quality is None else rate_position(model, round(quality * 100))
        for path in files:
            image = open_image(path)
            data = compress(image, quality=quality, model=name, effort=0)
            reference = np.asarray(decompress(data))
            saved = torch.get_num_threads()
            torch.set_num_threads(1)
            one_thread = np.asarray(decompress(data))
            torch.set_num_threads(saved)
            with hyper_route(model, split_exact_route):
                split = np.asarray(decompress(data))
            totals["decodes"] += 3
            totals["exact mismatches"] += int(not np.array_equal(one_thread, reference)) + int(not np.array_equal(split, reference))
            with hyper_route(model, float_route):
                float_data = compress(image, quality=quality, model=name, effort=0)
                float_image = decompress(float_data)
            with hyper_route(model, split_float_route):
                float_split = decompress(float_data)
            totals["float images differing"] += int(not np.array_equal(np.asarray(float_split), np.asarray(float_image)))
            z_hat = hyper_latent(model, image)
            mismatched, symbols = index_mismatches(model, z_hat, position)
            timings.append(hyper_seconds(model, z_hat))
            totals["float index mismatches"] += mismatched
            totals["symbols"] += symbols
            costs.append((len(data), len(float_data), psnr(image, decompress(data)), psnr(image, float_image),
                          psnr(image, float_split)))
    costs = np.array(costs)
    print(f"{len(names)} model(s) x {len(files)} images, {time.perf_counter() - start:.0f} s")
    for key, value in totals.items():
        print(f"{value:10d}  {key}")
    print(f"exact vs float path: {100 * (costs[:, 0].sum() / costs[:, 1].sum() - 1):+.3f} % bytes, "
          f"{costs[:, 2].mean() - costs[:, 3].mean():+.4f} dB PSNR")
    print(f"float path decoded in another order: worst PSNR drop {np.max(costs[:, 3] - costs[:, 4]):.2f} dB")
    timings = np.array(timings)
    print(f"hyper-synthesis per image: exact {1000 * np.median(timings[:, 0]):.0f} ms, "
          f"float {1000 * np.median(timings[:, 1]):.0f} ms (medians)")


if __name__ == "__main__":
    main()
