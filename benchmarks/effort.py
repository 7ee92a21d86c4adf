"""What each `--effort` level buys: BD-rate against effort 0, encode time and peak memory.

Every image is coded at each quality and effort level for real (`codec.compress(..., effort=E)`)
and decoded; per level: the mean bpp and PSNR-RGB at each quality, the BD-rate (PSNR-RGB, pchip)
of its curve against effort 0's over the same qualities, the mean encode seconds per image, and the
peak RSS of a fresh process that codes the images at that level (one process per level, so that
the peaks do not carry over). Pause other work first.

    python benchmarks/effort.py ../shared/data/kodak [--efforts 0,2,5,9] [--qualities 10,30,50,70,90]
        [--every 4] [--model vr2] [--out docs/effort.json]

--dry-run codes the first image at the first quality and effort in this process, and stops.
"""

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

from codec.fileio import image_files


def level(job: tuple[list[str], int, list[float], str | None]) -> dict:
    """One effort level over the images and qualities, in a fresh process: its points, times, peak RSS."""
    files, effort, qualities, model = job
    import torch

    from codec.api import compress, decompress
    from codec.image import open_image
    from codec.metrics import bits_per_pixel, psnr

    from codec.registry import default_card, get_card, load_model

    torch.set_num_threads(2)
    load_model(get_card(model) if model else default_card())  # loading the weights is not part of the encode time
    rows = []
    for quality in qualities:
        bpps, psnrs, seconds = [], [], []
        for path in files:
            image = open_image(path)
            start = time.perf_counter()
            data = compress(image, quality=quality, model=model, effort=effort)
            seconds.append(time.perf_counter() - start)
            bpps.append(bits_per_pixel(len(data), image))
            psnrs.append(psnr(image, decompress(data)))
        rows.append({"quality": quality, "bpp": sum(bpps) / len(bpps), "psnr": sum(psnrs) / len(psnrs),
                     "encode_s": sum(seconds) / len(seconds)})
        print(f"  effort {effort}  q{quality:g}: {rows[-1]['bpp']:.4f} bpp  {rows[-1]['psnr']:.2f} dB  "
              f"{rows[-1]['encode_s']:.2f} s/image", flush=True)
    return {"effort": effort, "points": rows, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images (Kodak)")
    parser.add_argument("--efforts", default="0,2,5,9")
    parser.add_argument("--qualities", default="10,30,50,70,90")
    parser.add_argument("--every", type=int, default=1, help="every K-th image only (4: kodim01, 05, ..., 21)")
    parser.add_argument("--model", default=None, help="a variable-rate model (default: the default one)")
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="code the first image once in this process, then stop")
    args = parser.parse_args()
    from codec.report import bd_rate

    files = [str(path) for path in image_files(args.images)][:: args.every]
    efforts = [int(value) for value in args.efforts.split(",")]
    if 0 not in efforts:
        efforts.insert(0, 0)
    qualities = [float(value) for value in args.qualities.split(",")]
    if args.dry_run:
        level((files[:1], efforts[0], qualities[:1], args.model))
        return
    context = multiprocessing.get_context("spawn")
    results = []
    for effort in efforts:
        with context.Pool(1) as pool:
            results.append(pool.apply(level, ((files, effort, qualities, args.model),)))
    anchor = next(result for result in results if result["effort"] == 0)
    print(f"\n{len(files)} images, qualities {args.qualities}; BD-rate PSNR-RGB against effort 0")
    print("| effort | BD-rate | encode s/image | peak RSS |\n|---|---|---|---|")
    for result in results:
        result["bd_rate"] = 0.0 if result is anchor else bd_rate(anchor["points"], result["points"], "psnr")
        seconds = sum(p["encode_s"] for p in result["points"]) / len(result["points"])
        result["encode_s"] = seconds
        bd = "n/a" if result["bd_rate"] is None else f"{result['bd_rate']:+.2f} %"
        print(f"| {result['effort']} | {bd} | {seconds:.2f} | {result['peak_rss_mb']:.0f} MB |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"images": [Path(f).name for f in files], "qualities": qualities,
                                        "model": args.model, "levels": results}, indent=1))


if __name__ == "__main__":
    main()
