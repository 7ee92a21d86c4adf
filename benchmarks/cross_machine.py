"""Decode on one machine what another coded: the same symbols, and how close the pixels.

    python benchmarks/cross_machine.py encode DIR    # code the test images, record their decodings
    python benchmarks/cross_machine.py check DIR     # decode DIR's files here, compare with the record

`encode` codes the project's sample image and two generated ones with the default model at
qualities 0, 37.51 and 100, and writes each .lic file, its decoding as a PNG, and in record.json the
sha256 of its decoded latents (the entropy decoder's output: symbols times the inverse gain, plus
the means). `check` decodes every recorded file on this machine and counts the files
whose latents and whose pixels match; pixels may differ (float arithmetic of the synthesis, bfloat16
where a CPU has it) by a few levels, latents never. Exits non-zero if any latents differ.
`encode --images smooth --qualities 50` codes fewer.
"""

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import codec
from codec.bitstream import Bitstream
from codec.image import open_image
from codec.registry import get_card, load_model

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"
QUALITIES = (0, 37.51, 100)


def test_images() -> dict:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:300] / 300
    smooth = np.stack([np.sin(7 * x) * 0.4 + 0.5, np.cos(5 * y + x) * 0.4 + 0.5, (x + y) / 2], axis=-1)
    textured = np.clip(smooth + rng.normal(0, 0.08, smooth.shape), 0, 1)
    return {
        "sample": open_image(SAMPLE),
        "smooth": Image.fromarray((smooth * 255).astype(np.uint8), "RGB"),
        "textured": Image.fromarray((textured * 255).astype(np.uint8), "RGB"),
    }


def decoded(data: bytes) -> tuple[str, np.ndarray]:
    """sha256 of the latents that the synthesis receives, and the decoded pixels."""
    model = load_model(get_card(Bitstream.from_bytes(data).model))
    latents = []
    synthesis = model.coding_synthesis
    model.coding_synthesis = lambda y_hat: latents.append(y_hat.clone()) or synthesis(y_hat)
    try:
        pixels = np.asarray(codec.decompress(data))
    finally:
        del model.coding_synthesis
    return hashlib.sha256(latents[0].numpy().tobytes()).hexdigest(), pixels


def machine() -> str:
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(sorted({f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text}))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} [{flags}] torch {torch.__version__}, {torch.get_num_threads()} threads"


def encode(folder: Path, names: list[str], qualities: list[float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine(), "files": {}}
    images = test_images()
    for name in names:
        image = images[name]
        for quality in qualities:
            data = codec.compress(image, quality=quality)
            filename = f"{name}-q{quality:g}.lic"
            (folder / filename).write_bytes(data)
            latents, pixels = decoded(data)
            Image.fromarray(pixels).save(folder / f"{filename}.png")
            record["files"][filename] = {"latents": latents}
            print(f"{filename}: {len(data)} bytes")
    (folder / "record.json").write_text(json.dumps(record))


def check(folder: Path) -> int:
    record = json.loads((folder / "record.json").read_text())
    print(f"coded on: {record['machine']}\ndecoded on: {machine()}")
    mismatched = 0
    for filename, expected in record["files"].items():
        latents, pixels = decoded((folder / filename).read_bytes())
        there = np.asarray(Image.open(folder / f"{filename}.png"))
        levels = int(np.abs(pixels.astype(int) - there.astype(int)).max())
        mismatched += latents != expected["latents"]
        print(f"{filename}: latents {'equal' if latents == expected['latents'] else 'DIFFER'}, "
              + ("pixels equal" if levels == 0 else f"pixels differ by at most {levels} levels"))
    print(f"{len(record['files']) - mismatched}/{len(record['files'])} files decode to the same latents")
    return 1 if mismatched else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("encode", "check"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", default="sample,smooth,textured", help="encode: which test images")
    parser.add_argument("--qualities", default=",".join(f"{q:g}" for q in QUALITIES), help="encode: at which qualities")
    args = parser.parse_args()
    if args.action == "encode":
        names = args.images.split(",")
        if not set(names) <= set(test_images()):
            parser.error(f"--images: choose from {', '.join(test_images())}")
        encode(args.folder, names, [float(q) for q in args.qualities.split(",")])
    else:
        sys.exit(check(args.folder))


if __name__ == "__main__":
    main()
