"""Where the float32 path's coding time goes, and the floor that the transforms' arithmetic sets.

speed.py's goal is encode+decode in half of CompressAI's time with the same model. Where the CPU
computes bfloat16 natively our codec reaches it by running g_a and g_s in bfloat16; elsewhere it
codes in float32, and both codecs then run the same float32 g_a and g_s. This script times each of
their layers as our float32 coding runs them (channels-last, inference, freed memory kept, the
first and last layers in their faster forms) against this machine's float32 matrix-multiply rate
at the same thread count, times the other stages of our float32 compress and decompress, and,
alternating with ours in worker processes as speed.py runs them, CompressAI's own
compress/decompress. Pause other work first.

    python benchmarks/compute_bound.py ../shared/data/kodak --images 3

With the default model (`vr3`) CompressAI's side carries its transforms without the rate gains
(speed.py says why); our stages run at gain 1 too. --dry-run profiles the first image once in this
process, without the worker processes: a check of the set-up before a long run.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from codec.allocator import retain_freed_memory
from codec.fileio import image_files
from codec.image import open_image, to_tensor
from codec.models import coding
from codec.models.layers import GDN
from codec.registry import default_card, get_card, load_model
from speed import Worker


def median_seconds(function, repeat: int) -> float:
    function()  # warm-up: oneDNN picks and caches its kernels
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(repeat: int, side: int = 2048) -> float:
    """Multiply-accumulates per second of a side³ float32 matrix product: the attainable peak."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    return side**3 / median_seconds(lambda: a @ b, repeat)


def layer_macs(layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Multiply-accumulates of one layer from its input x and output y (GDN: its 1x1 convolution)."""
    if isinstance(layer, GDN):
        return y.numel() * y.shape[1]
    kernel = layer.weight.shape[-2] * layer.weight.shape[-1]
    if isinstance(layer, nn.ConvTranspose2d):  # every input value meets every kernel tap once
        return x.numel() * layer.out_channels * kernel
    return y.numel() * layer.in_channels * kernel


def profile_transform(name: str, transform: nn.Sequential, x: torch.Tensor, rate: float, repeat: int) -> tuple[float, float]:
    """Print each layer's time and arithmetic rate; return the transform's (seconds, MACs)."""
    total_seconds = total_macs = 0
    x = x.contiguous(memory_format=torch.channels_last)
    for index, (layer, run) in enumerate(zip(transform, coding.coding_layers(transform))):
        y = run(x.clone()).contiguous(memory_format=torch.channels_last)  # GDN works in place: each timing gets a fresh input
        seconds = median_seconds(lambda: run(x.clone()), repeat)
        macs = layer_macs(layer, x, y)
        total_seconds, total_macs = total_seconds + seconds, total_macs + macs
        print(f"  {name}[{index}] {type(layer).__name__:16s} in {tuple(x.shape[1:])!s:17s} {seconds * 1e3:7.1f} ms"
              f"  {macs / 1e9:5.2f} GMAC  {macs / seconds / 1e9:5.1f} GMAC/s ({macs / seconds / rate:4.0%} of the matrix rate)")
        x = y
    print(f"  {name}: {total_seconds * 1e3:.1f} ms, {total_macs / 1e9:.2f} GMAC")
    return total_seconds, total_macs


def stage_times(model, x: torch.Tensor, repeat: int) -> dict[str, float]:
    """Seconds of each step of our compress and decompress (medians); the model's own order."""
    y = model.coding_analysis(x)
    z = model.h_a(model.hyper_input(y))
    z_string = model.entropy_bottleneck.compress(z)[0]
    z_hat = model.entropy_bottleneck.decompress([z_string], z.shape[-2:])
    scales, means = model.coding_gaussian_params(z_hat)
    indexes = model.scale_indexes(scales)
    conditional = model.gaussian_conditional
    y_string = coding.encode_symbols(conditional, conditional.quantize(y, "symbols", means), indexes)
    y_hat = model.decode_y(y_string, z_hat)
    return {
        "g_a": median_seconds(lambda: model.coding_analysis(x), repeat),
        "h_a": median_seconds(lambda: model.h_a(model.hyper_input(y)), repeat),
        "z coding (each way)": median_seconds(lambda: model.entropy_bottleneck.compress(z), repeat),
        "h_s, exact (each way)": median_seconds(lambda: model.coding_gaussian_params(z_hat), repeat),
        "h_s in float32, for comparison": median_seconds(lambda: model.h_s(z_hat), repeat),
        "y encoding": median_seconds(lambda: coding.encode_symbols(conditional, conditional.quantize(y, "symbols", means), indexes), repeat),
        "y decoding": median_seconds(
            lambda: coding.decode_symbols(conditional, coding.bounded(y_string, indexes.numel()), indexes), repeat),
        "g_s": median_seconds(lambda: model.coding_synthesis(y_hat), repeat),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images (Kodak); the first --images are used")
    parser.add_argument("--images", type=int, default=3, dest="count", help="images to run the codecs on")
    parser.add_argument("--model", help="registered mean-scale model (default: the shipped default)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per measurement (medians)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="profile the first image once in this process, then stop")
    args = parser.parse_args()
    arrays = [np.asarray(open_image(path).convert("RGB")) for path in image_files(args.images)[: args.count]]
    if args.dry_run:
        args.repeat, arrays = 1, []

    workers = {side: Worker(side, args.model, None, args.threads) for side in ("ours-float32", "compressai") if arrays}
    totals = {side: [] for side in workers}
    for array in arrays:
        for _ in range(args.repeat):
            for side, worker in workers.items():
                encode, decode = worker.code(array)[:2]
                totals[side].append(encode + decode)
    for worker in workers.values():
        worker.close()

    if not args.dry_run:
        retain_freed_memory()
        torch.set_num_threads(args.threads)
    model = load_model(get_card(args.model) if args.model else default_card())
    saved, coding.DTYPE = coding.DTYPE, torch.float32
    try:
        floor = profile(model, args)
    finally:
        coding.DTYPE = saved
    if not totals:
        return
    ours, reference = (statistics.median(totals[side]) for side in ("ours-float32", "compressai"))
    print(f"encode+decode, {len(arrays)} image(s) x {args.repeat}, worker processes as in speed.py (medians): "
          f"ours in float32 {ours:.3f} s, CompressAI {reference:.3f} s, ratio {ours / reference:.2f}")
    print(f"at the matrix rate, g_a + g_s would take {floor:.3f} s = {floor / reference:.2f} of CompressAI's encode+decode")


def profile(model, args) -> float:
    """Time the layers of g_a and g_s and the stages of float32 coding on the first image; returns
    the seconds g_a and g_s would take at the matrix product's rate."""
    rate = gemm_rate(args.repeat, 256 if args.dry_run else 2048)
    x = to_tensor(open_image(image_files(args.images)[0]).convert("RGB"), 64)
    print(f"float32 matrix product, {torch.get_num_threads()} threads: {rate / 1e9:.1f} GMAC/s")
    print(f"layers on {x.shape[-1]}x{x.shape[-2]}, channels-last, inference:")
    with torch.inference_mode():
        g_a_seconds, g_a_macs = profile_transform("g_a", model.g_a, x, rate, args.repeat)
        y_hat = torch.round(model.coding_analysis(x))
        g_s_seconds, g_s_macs = profile_transform("g_s", model.g_s, y_hat, rate, args.repeat)
        stages = stage_times(model, x, args.repeat)
    print("our stages, as float32 compress/decompress run them:")
    for name, seconds in stages.items():
        print(f"  {name:32s} {seconds * 1e3:7.1f} ms")
    floor = (g_a_macs + g_s_macs) / rate
    print(f"g_a + g_s: {(g_a_macs + g_s_macs) / 1e9:.1f} GMAC, measured {(g_a_seconds + g_s_seconds):.3f} s layer by layer;"
          f" at the matrix rate {floor:.3f} s")
    return floor


if __name__ == "__main__":
    main()
