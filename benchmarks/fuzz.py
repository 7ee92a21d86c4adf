"""The long fuzz run of the decoder (codec/fuzz.py) on a file of the shipped default model.

    python benchmarks/fuzz.py --count 10000

Prints the outcome counts; exits non-zero if any input crashed.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import codec
from codec.fuzz import fuzz
from codec.image import open_image

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000, help="random mutations (after every truncation)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = codec.compress(open_image(SAMPLE).crop((0, 0, 96, 64)))
    start = time.perf_counter()
    outcomes = fuzz(data, args.count, args.seed, max_pixels=256 * 256)
    seconds = time.perf_counter() - start
    for key, value in sorted(outcomes.items()):
        print(f"{value:8d}  {key}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(data)}-byte file, {seconds:.0f} s, peak RSS {peak_mb:.0f} MB")
    sys.exit(1 if any(key.startswith("crash") for key in outcomes) else 0)


if __name__ == "__main__":
    main()
