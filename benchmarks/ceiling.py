"""The quality ceiling of a variable-rate model's transforms: how well g_s(g_a(x)) can reconstruct an
image with no quantization at all, with the latents rounded as coding rounds them, and through a real
file, at a few anchors, on Kodak (whole images), on generated content photos rarely hold
(codec.synthetic.reference_patterns) and on crops of the training images (fitting against generalization).

Per anchor and image set: the mean PSNR-RGB of
  transforms  g_s(g_a(x) * g * g'), float32, the training form (no rounding anywhere),
  rounded     g_s(round((g_a(x) - mean) * g) * g' + mean), float32 transforms, the hyperprior as coding
              runs it (z rounded, its exact form),
  file        a real file at the anchor's quality, decoded (bits per pixel from its bytes),
and the worst per-channel mean error of the decoded file (levels of 255, signed: how far a flat colour
comes back off), and for grey inputs the largest channel spread of a decoded pixel (a tint). Pause
training first: it runs on every core.

    python benchmarks/ceiling.py ../shared/data/kodak --train ../shared/data/train --model vr3 \
        --out docs/ceiling/vr3.json

--dry-run scores the first image at the first anchor and stops: a check of the set-up before a long run.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec.api import compress, decompress
from codec.fileio import image_files
from codec.image import open_image, to_image, to_tensor
from codec.metrics import bits_per_pixel, psnr
from codec.registry import default_card, get_card, load_model
from codec.synthetic import reference_patterns


def gains_at(net, anchor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, g') of an anchor as training uses them, shaped to multiply y."""
    return net.gain.detach().abs()[anchor].view(1, -1, 1, 1), net.inverse_gain.detach().abs()[anchor].view(1, -1, 1, 1)


@torch.inference_mode()
def reconstructions(net, x: torch.Tensor, anchor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(no quantization, rounded) reconstructions of a padded image tensor at an anchor."""
    gain, inverse_gain = gains_at(net, anchor)
    y = net.g_a(x)
    unquantized = net.g_s(y * gain * inverse_gain)
    z = net.hyper_analysis(y)
    z_hat = net.entropy_bottleneck.quantize(z, "dequantize", net.entropy_bottleneck._get_medians())
    scales, means = net.latent_params(y, z_hat, gain, inverse_gain, coded=True)  # the exact hyperprior, as coding runs it
    rounded = net.g_s(torch.round((y - means) * gain) * inverse_gain + means)
    return unquantized, rounded


def tensor_psnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """PSNR of the 8-bit image a reconstruction would write."""
    mse = float((x_hat.clamp(0, 1).mul(255).round() - x.mul(255).round()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def score(card, net, image: Image.Image, anchor: int) -> dict:
    """One image at one anchor: the three PSNRs, the file's bpp, its channel mean errors and tint."""
    x = to_tensor(image, net.downsampling)
    h, w = image.height, image.width
    unquantized, rounded = (r[..., :h, :w] for r in reconstructions(net, x, anchor))
    reference = x[..., :h, :w]
    data = compress(image, quality=100 * anchor / (net.anchors - 1), model=card.name, effort=0)
    decoded = decompress(data).convert("RGB")
    error = np.asarray(decoded, dtype=np.float64) - np.asarray(image.convert("RGB"), dtype=np.float64)
    rgb = np.asarray(decoded, dtype=np.int32)
    spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max())
    return {"transforms": tensor_psnr(reference, unquantized), "rounded": tensor_psnr(reference, rounded),
            "file": psnr(image, decoded), "bpp": bits_per_pixel(len(data), image),
            "channel_error": error.mean(axis=(0, 1)).tolist(), "spread": spread}


def training_crops(folder: str, count: int, size: int = 256) -> dict[str, Image.Image]:
    """`count` crops of `size` from the training images, the same on every run."""
    generator = np.random.default_rng(0)
    files = image_files(folder)
    crops = {}
    for index in generator.choice(len(files), size=min(count, len(files)), replace=False):
        image = open_image(files[index])
        if min(image.size) < size:
            continue
        left, top = (int(generator.integers(0, side - size + 1)) for side in image.size)
        crops[files[index].name] = image.crop((left, top, left + size, top + size))
    return crops


def summarize(rows: dict) -> dict:
    """Means over a set's images; the worst signed channel error; the largest tint of grey inputs."""
    values = list(rows.values())
    summary = {key: float(np.mean([v[key] for v in values])) for key in ("transforms", "rounded", "file", "bpp")}
    worst = max((e for v in values for e in v["channel_error"]), key=abs)
    summary["worst_channel_error"] = worst
    greys = [v["spread"] for v in values if v.get("grey")]
    if greys:
        summary["grey_spread"] = max(greys)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kodak", help="folder of Kodak images (or any evaluation set), coded whole")
    parser.add_argument("--train", help="folder of training images: also score random 256² crops of them")
    parser.add_argument("--crops", type=int, default=12, help="training crops to score")
    parser.add_argument("--model", help="a registered variable-rate model (default: the default one)")
    parser.add_argument("--anchors", default="0,4,8", help="anchors to score, comma-separated")
    parser.add_argument("--limit", type=int, help="score only the first N Kodak images (0: the patterns alone)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="score the first image at the first anchor, then stop")
    args = parser.parse_args()
    if not args.dry_run:
        torch.set_num_threads(args.threads)
    card = get_card(args.model) if args.model else default_card()
    if not card.variable_rate:
        parser.error(f"{card.name} is not a variable-rate model")
    net = load_model(card)  # the cached model the API codes with: left as it is (its gain table stays float64)
    anchors = [int(a) for a in args.anchors.split(",")]
    if any(not 0 <= a < net.anchors for a in anchors):
        parser.error(f"--anchors must be from 0 to {net.anchors - 1}")
    patterns = {name: to_image(p[None], "RGB") for name, p in reference_patterns().items()}
    kodak = {p.name: open_image(p) for p in image_files(args.kodak)[: args.limit]}
    sets = {"kodak": kodak, "patterns": patterns} if kodak else {"patterns": patterns}
    if args.train:
        sets["training crops"] = training_crops(args.train, args.crops)
    if args.dry_run:
        name, image = next(iter(next(iter(sets.values())).items()))
        print(f"{name} at anchor {anchors[0]}: {score(card, net, image, anchors[0])}")
        return
    started = time.monotonic()
    results = {"model": card.name, "anchors": {}}
    for anchor in anchors:
        per_set = {}
        for set_name, images in sets.items():
            rows = {}
            for name, image in images.items():
                rows[name] = score(card, net, image, anchor)
                rgb = np.asarray(image.convert("RGB"))
                rows[name]["grey"] = bool((rgb == rgb[..., :1]).all())
            per_set[set_name] = {"summary": summarize(rows), "images": rows}
        results["anchors"][anchor] = per_set
    results["seconds"] = round(time.monotonic() - started, 1)

    print(f"{card.name}: PSNR-RGB (dB) with no quantization / rounded / through a file, the file's bpp, the worst "
          "per-channel mean error (levels) and the largest channel spread of grey inputs")
    print("\n| anchor | set | transforms | rounded | file | bpp | worst channel error | grey spread |\n|---|---|---|---|---|---|---|---|")
    for anchor, per_set in results["anchors"].items():
        for set_name, entry in per_set.items():
            s = entry["summary"]
            print(f"| {anchor} | {set_name} | {s['transforms']:.2f} | {s['rounded']:.2f} | {s['file']:.2f} | {s['bpp']:.3f} | "
                  f"{s['worst_channel_error']:+.1f} | {s.get('grey_spread', '')} |")
    print("\n| anchor | pattern | transforms | file | bpp | channel error (R, G, B) | grey spread |\n|---|---|---|---|---|---|---|")
    for anchor, per_set in results["anchors"].items():
        for name, row in per_set["patterns"]["images"].items():
            errors = ", ".join(f"{e:+.1f}" for e in row["channel_error"])
            spread = row["spread"] if row["grey"] else ""
            print(f"| {anchor} | {name} | {row['transforms']:.2f} | {row['file']:.2f} | {row['bpp']:.3f} | {errors} | {spread} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
