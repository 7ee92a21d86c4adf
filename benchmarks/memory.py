"""Peak memory of the `codec` command on large images, as a user runs it.

Builds a mosaic of the given images (real photo content) at each size, then runs `codec compress`
and `codec decompress` on it as separate processes, and reports each one's wall time and peak RSS
(the kernel's count for that process: interpreter, torch, the model and the image). Also checks the
decoded size and PSNR.

    python benchmarks/memory.py ../shared/data/kodak --sizes 3840x2160 8000x8000 [--quality Q] [--effort E]

--dry-run builds the mosaics and prints the commands instead of running them.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from codec.fileio import image_files
from codec.image import open_image
from codec.metrics import psnr
from speed import mosaic, size

Image.MAX_IMAGE_PIXELS = None  # our own mosaics


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images for the mosaics (Kodak)")
    parser.add_argument("--sizes", type=size, nargs="+", default=[(3840, 2160)])
    parser.add_argument("--quality", type=int, default=None)
    parser.add_argument("--effort", type=int, default=None, help="encoder effort (default: the command's)")
    parser.add_argument("--dry-run", action="store_true", help="build the mosaics, print the commands, run nothing")
    args = parser.parse_args()
    arrays = [np.asarray(open_image(path).convert("RGB")) for path in image_files(args.images)]
    codec = [str(Path(sys.executable).parent / "codec")]  # the console script beside this Python
    quality = ([] if args.quality is None else ["-q", str(args.quality)]) + ([] if args.effort is None else ["--effort", str(args.effort)])
    with tempfile.TemporaryDirectory() as folder:
        for width, height in args.sizes:
            source, coded, decoded = (Path(folder) / f"{width}x{height}{suffix}" for suffix in (".png", ".lic", ".out.png"))
            Image.fromarray(mosaic(arrays, width, height)).save(source, compress_level=1)
            if args.dry_run:
                print(" ".join([*codec, "compress", str(source), "-o", str(coded), "--force", *quality]))
                continue
            encode = run([*codec, "compress", str(source), "-o", str(coded), "--force", *quality])
            decode = run([*codec, "decompress", str(coded), "-o", str(decoded), "--force"])
            with Image.open(source) as original, Image.open(decoded) as result:
                assert result.size == original.size
                quality_db = psnr(original, result)
            bpp = 8 * coded.stat().st_size / (width * height)
            print(f"{width}x{height}: compress {encode[0]:6.1f} s, peak RSS {encode[1]:5.0f} MB;"
                  f" decompress {decode[0]:6.1f} s, peak RSS {decode[1]:5.0f} MB; {bpp:.4f} bpp, {quality_db:.2f} dB")


if __name__ == "__main__":
    main()
