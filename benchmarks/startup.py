"""Wall time of whole `codec` processes, start to exit: what a user waits for each command.

Each command runs --runs times, in turns (so that a change in the machine's load touches every
command alike); the table gives the minimum and the median wall time, and the median CPU time
(user + system, the process's own: on a machine busy with other work, the steadier figure). Beside the commands, the floors they
stand on: the interpreter alone, `import torch`, and `import compressai`, with what CompressAI 1.2.8
imports on the way each on its own (torchvision and torch_geometric, both of which import
torch._dynamo; scipy.stats). The
coding commands run on --image with the default model, effort 0.

    python benchmarks/startup.py [--runs 7] [--image data/sample.png] [--commands help,models,compress]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"
CODEC = [sys.executable, str(Path(sys.executable).parent / "codec")]  # the console script beside this Python


def commands(image: Path, folder: Path) -> dict[str, list[str]]:
    coded, decoded = folder / "image.lic", folder / "decoded.png"
    return {
        "python": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-W", "ignore", "-c", "import torch"],
        "import torchvision": [sys.executable, "-W", "ignore", "-c", "import torchvision"],
        "import torch_geometric": [sys.executable, "-W", "ignore", "-c", "import torch_geometric"],
        "import scipy.stats": [sys.executable, "-W", "ignore", "-c", "import scipy.stats"],
        "import compressai": [sys.executable, "-W", "ignore", "-c", "import compressai"],
        "help": [*CODEC, "--help"],
        "models": [*CODEC, "models"],
        "compress": [*CODEC, "compress", str(image), "-o", str(coded), "--force"],
        "decompress": [*CODEC, "decompress", str(coded), "-o", str(decoded), "--force"],
    }


def seconds(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", type=Path, default=SAMPLE, help="the image compress codes")
    parser.add_argument("--commands", help="comma-separated, of: python, import torch, import torchvision, import torch_geometric, "
                                           "import scipy.stats, import compressai, help, models, "
                                           "compress, decompress (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        every = commands(args.image, Path(folder))
        names = args.commands.split(",") if args.commands else list(every)
        if unknown := [name for name in names if name not in every]:
            parser.error(f"unknown command {unknown[0]!r}")
        if "decompress" in names and "compress" not in names:
            names.insert(names.index("decompress"), "compress")  # it writes the file decompress reads
        times = {name: [] for name in names}
        for _ in range(args.runs):
            for name in names:
                times[name].append(seconds(every[name]))
    print(f"{args.runs} runs each, {args.image.name} for the coding commands")
    print("| process | wall, min (s) | wall, median (s) | CPU, median (s) |\n|---|---|---|---|")
    for name, values in times.items():
        walls, cpus = zip(*values)
        print(f"| {name} | {min(walls):.2f} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} |")


if __name__ == "__main__":
    main()
