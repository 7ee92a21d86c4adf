"""Our compress/decompress against CompressAI's own, with the same transforms (the default model's, `vr3`).

Worker processes, each with 2 threads: "ours" runs our model's compress/decompress as the `codec`
command does (tiled transforms, channels-last, freed memory kept, see codec/allocator.py, and g_a
and g_s in bfloat16 where the CPU has it natively), at a fixed quality (--quality, default the
model's), "ours-float32" the same in float32, and "compressai" CompressAI's MeanScaleHyperprior
carrying the same transforms and entropy models, run as its users run it. The comparison is of the
transforms alone: CompressAI's model has no rate gains, so it codes y at gain 1 (another rate than
ours: the mean bits ratio says how far), since folding a variable-rate model's gains into the
weights is not exact (its gain and inverse gain are not each other's inverse).
The parent gives them the same padded image in turn, image by image and repeat by repeat, so all
see the same machine load. Reports median encode and decode times, their ratio to CompressAI's,
peak RSS of each step (the process's, libraries and model included; each image size gets fresh
workers), and checks equal RD of ours against ours-float32: bits within 1 %, PSNR within 0.01 dB.
CompressAI's model has no hyperprior blocks: for a model with them (hyper_block) it runs the same
weights over the whole image, with the same transforms but other bits (the mean bits ratio says how many).

Large images are mosaics of the given images (real photo content), e.g. --large 3840x2160; sizes
given with --ours-only are run by our codec alone (CompressAI's whole-image pass would not fit:
it needs about 5.3 GB at 4K). Pause other work first: 2-core timings compare only within one run.

    python benchmarks/speed.py ../shared/data/kodak --large 3840x2160 --ours-only 8000x8000

--dry-run codes the first image once per side in this process and stops: a check of the set-up
before a long run.
"""

import argparse
import contextlib
import multiprocessing
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec.allocator import bounded_heap, retain_freed_memory
from codec.fileio import image_files
from codec.image import open_image, to_image, to_tensor
from codec.metrics import psnr
from codec.api import rate_position
from codec.models import coding
from codec.registry import default_card, get_card, load_model

SIDES = ("ours", "ours-float32", "compressai")


def reference_copy(model):
    """CompressAI's MeanScaleHyperprior with our transforms and entropy models, without the rate gains
    (which it has no place for): our hyper transforms hold Identity placeholders for the optional
    attention blocks, so their layer indices are renumbered."""
    from compressai.models import MeanScaleHyperprior

    renumber = {"0": "0", "3": "2", "6": "4"}
    net = MeanScaleHyperprior(model.N, model.M)
    wanted = net.state_dict().keys()
    state = {re.sub(r"^(h_[as])\.(\d+)\.", lambda m: f"{m[1]}.{renumber[m[2]]}.", k): v for k, v in model.state_dict().items()}
    net.load_state_dict({k: v for k, v in state.items() if k in wanted})
    net.update(force=True)
    return net.eval()


def position_of(card, model, quality: float | None) -> float | None:
    """Our model's rate position: a variable-rate model's at `quality` (default: the model's own),
    None for a one-rate model."""
    if not card.variable_rate:
        return None
    return rate_position(model, round(100 * (card.default_quality if quality is None else quality)))


def set_up(side: str, model_name: str | None, quality: float | None):
    """The model a side codes with, and our model's rate position."""
    card = get_card(model_name) if model_name else default_card()
    model = load_model(card)
    position = position_of(card, model, quality)
    return (reference_copy(model) if side == "compressai" else model), position


@contextlib.contextmanager
def precision(side: str):
    """Coding's precision for a side: float32 for "ours-float32", the machine's choice otherwise."""
    saved = coding.DTYPE
    if side == "ours-float32":
        coding.DTYPE = torch.float32
    try:
        yield
    finally:
        coding.DTYPE = saved


def reset_peak_rss() -> None:
    """Start the kernel's peak-RSS count (VmHWM) again from the current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def code(side: str, model, position: float | None, array: np.ndarray) -> tuple:
    """(encode s, decode s, bits, PSNR, encode and decode peak RSS in MB) of one image. Each peak is
    the process's, model and libraries included, during that step."""
    image = Image.fromarray(array, "RGB")
    large = side != "compressai" and array.shape[0] * array.shape[1] > coding.WHOLE_PIXELS
    with bounded_heap(large), torch.inference_mode():  # as codec.compress and decompress do
        reset_peak_rss()
        x = to_tensor(image, 64)
        height, width = x.shape[-2:]
        start = time.perf_counter()
        if side != "compressai":
            strings = model.compress(x, position)
        else:
            coded = model.compress(x)
            strings = [s[0] for s in coded["strings"]]
        encoded = time.perf_counter()
        encode_peak = peak_rss_mb()
        del x  # what the decoder gets is the file: the strings and the size
        reset_peak_rss()
        decoding = time.perf_counter()
        if side != "compressai":
            x_hat = model.decompress(strings, height, width, position)
        else:
            x_hat = model.decompress(coded["strings"], coded["shape"])["x_hat"]
        decoded = time.perf_counter()
    peak = encode_peak, peak_rss_mb()  # before the PSNR's own copies
    quality = psnr(image, to_image(x_hat[..., : image.height, : image.width], "RGB"))
    bits = 8 * sum(len(s) for s in strings)
    return encoded - start, decoded - decoding, bits, quality, peak


def worker(connection, side: str, model_name: str | None, quality: float | None, threads: int) -> None:
    """Serve (image array) -> code(...) until sent None."""
    if side != "compressai":
        retain_freed_memory()
    torch.set_num_threads(threads)
    model, position = set_up(side, model_name, quality)
    with precision(side):
        while (array := connection.recv()) is not None:
            connection.send(code(side, model, position, array))


class Worker:
    def __init__(self, side: str, model: str | None, quality: float | None, threads: int):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=worker, args=(child, side, model, quality, threads), daemon=True)
        self.process.start()

    def code(self, array: np.ndarray) -> tuple:
        self.connection.send(array)
        return self.connection.recv()

    def close(self) -> None:
        self.connection.send(None)
        self.process.join()


def mosaic(images: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """A width x height image tiled, row by row, from the images (landscape ones, as they are)."""
    landscape = [a for a in images if a.shape[1] >= a.shape[0]]
    tile_h, tile_w = min(a.shape[0] for a in landscape), min(a.shape[1] for a in landscape)
    rows, cols = -(-height // tile_h), -(-width // tile_w)
    tile = lambda index: landscape[index % len(landscape)][:tile_h, :tile_w]  # noqa: E731
    grid = np.concatenate([np.concatenate([tile(r * cols + c) for c in range(cols)], axis=1) for r in range(rows)])
    return np.ascontiguousarray(grid[:height, :width])


def run(label: str, arrays: list[np.ndarray], sides: tuple[str, ...], args) -> None:
    workers = {side: Worker(side, args.model, args.quality, args.threads) for side in sides}
    times = {(side, step): [] for side in sides for step in ("encode", "decode")}
    rd, peaks = [], {}  # rd: per image, side -> (bits, PSNR) of its last coding
    for array in arrays:
        results = {}
        for _ in range(args.repeat):
            for side in sides:
                encode, decode, bits, quality, peaks[side] = workers[side].code(array)
                times[side, "encode"].append(encode)
                times[side, "decode"].append(decode)
                results[side] = bits, quality
        rd.append(results)
    print(f"\n{label}: {len(arrays)} image(s) of {arrays[0].shape[1]}x{arrays[0].shape[0]}, {args.repeat} repeat(s), {args.threads} threads")
    pixels = arrays[-1].shape[0] * arrays[-1].shape[1]
    for side in sides:
        encode, decode = (statistics.median(times[side, step]) for step in ("encode", "decode"))
        bits, quality = rd[-1][side]
        print(f"  {side:12s} encode {encode:7.3f} s  decode {decode:7.3f} s  (medians)  peak RSS encode {peaks[side][0]:5.0f} MB"
              f" decode {peaks[side][1]:5.0f} MB  last image {bits / pixels:.4f} bpp {quality:.2f} dB")
    total = {side: statistics.median(times[side, "encode"]) + statistics.median(times[side, "decode"]) for side in sides}
    if "compressai" in sides:
        for side in sides[:-1]:
            print(f"  encode+decode, {side} / CompressAI: {total[side] / total['compressai']:.2f}")
        print(f"  bits ours / CompressAI {statistics.mean(r['ours'][0] / r['compressai'][0] for r in rd):.3f} (mean)")
    if "ours-float32" in sides:
        bits = [r["ours"][0] / r["ours-float32"][0] - 1 for r in rd]
        gains = [r["ours"][1] - r["ours-float32"][1] for r in rd]
        equal = sum(abs(b) < 0.01 and abs(g) < 0.01 for b, g in zip(bits, gains))
        print(f"  ours against ours-float32: RD equal (bits 1 %, PSNR 0.01 dB) on {equal}/{len(rd)} images;"
              f" bits {100 * min(bits):+.2f} to {100 * max(bits):+.2f} %, PSNR {min(gains):+.3f} to {max(gains):+.3f} dB"
              f" (mean {statistics.mean(gains):+.4f})")
    for w in workers.values():
        w.close()


def size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images (Kodak)")
    parser.add_argument("--model", help="registered mean-scale model, one-rate or variable-rate (default: the shipped default)")
    parser.add_argument("--quality", type=float, help="a variable-rate model's quality (default: its own)")
    parser.add_argument("--repeat", type=int, default=3, help="codings per image and side (Kodak size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--large", type=size, nargs="*", default=[], help="mosaic sizes to run on both sides, WxH")
    parser.add_argument("--ours-only", type=size, nargs="*", default=[], help="mosaic sizes for our codec alone")
    parser.add_argument("--dry-run", action="store_true", help="code the first image once per side in this process, then stop")
    args = parser.parse_args()
    arrays = [np.asarray(open_image(path).convert("RGB")) for path in image_files(args.images)]
    if args.dry_run:
        for side in SIDES:
            model, position = set_up(side, args.model, args.quality)
            with precision(side):
                _, _, bits, quality, _ = code(side, model, position, arrays[0])
            print(f"{side}: {bits / (arrays[0].shape[0] * arrays[0].shape[1]):.4f} bpp, {quality:.2f} dB")
        return
    run("images", arrays, SIDES, args)
    args.repeat = 1
    for width, height in args.large:
        run("mosaic", [mosaic(arrays, width, height)], SIDES, args)
    for width, height in args.ours_only:
        run("mosaic", [mosaic(arrays, width, height)], ("ours",), args)


if __name__ == "__main__":
    main()
