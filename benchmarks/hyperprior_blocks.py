"""Ablation of the hyperprior's attention/normalization blocks at equal CPU time.

Each block (none, grn, gc, sge, gct) goes into h_a and h_s of the chosen architecture, which then
trains from scratch with `codec train`'s recipe (changed by --set KEY=VALUE) for the same wall-clock
budget, all in turns a step at a time (so that a noisy machine slows them alike), and is scored on every 4th Kodak image: bpp from the likelihoods, PSNR of the quantized forward
pass. Slower blocks get fewer steps: that is the point of equal time. One rate point per block gives
no BD-rate; the last column estimates the rate change at equal PSNR against "none" from the local
slope of the shipped models' Kodak curve (dB per doubling of bpp), and says so. Pause other work first.

    python benchmarks/hyperprior_blocks.py ../shared/data/train ../shared/data/kodak --minutes 6 \
        --arch mean-scale-hyperprior --out docs/hyperprior_blocks.json
"""

import argparse
import json
from pathlib import Path

import torch

from codec.fileio import image_files
from codec.train import Trainer
from codec.training.config import TrainConfig
from codec.training.validation import load_validation
from codec.models.layers import HYPER_ATTENTION
from learning_speed import LMBDA, apply_settings, db_per_doubling
from codec.race import Contender, race, set_up_like_codec_train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of training images")
    parser.add_argument("kodak", help="folder of Kodak images; every 4th is scored")
    parser.add_argument("--minutes", type=float, default=6, help="training budget of each block")
    parser.add_argument("--arch", default="mean-scale-hyperprior", choices=("scale-hyperprior", "mean-scale-hyperprior"))
    parser.add_argument("--blocks", default=",".join(HYPER_ATTENTION))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change the recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args()
    set_up_like_codec_train(args.threads)
    base = apply_settings(TrainConfig(data=args.data, lmbda=LMBDA, arch=args.arch), args.set, parser)
    files = image_files(args.kodak)[::4]
    blocks = args.blocks.split(",")
    for block in blocks:
        if block not in HYPER_ATTENTION:
            parser.error(f"unknown block {block!r}; choose from {', '.join(HYPER_ATTENTION)}")
    contenders = [Contender(block, Trainer(TrainConfig(**{**base.__dict__, "hyper_attention": block})),
                            args.minutes * 60, base.steps) for block in blocks]
    race(contenders, args.minutes * 60, load_validation(files, 64, torch.device("cpu")))
    rows = [{"block": c.label, **c.curve[-1]} for c in contenders]
    reference = next((row for row in rows if row["block"] == "none"), rows[0])
    slope = db_per_doubling(reference["val_bpp"])
    print(f"\n{args.arch}, lambda {LMBDA}, {args.minutes:g} min each; rate change at equal PSNR vs "
          f"{reference['block']} estimated with {slope:.2f} dB per doubling of bpp")
    print("| block | steps | bpp | PSNR (dB) | est. rate change |\n|---|---|---|---|---|")
    for row in rows:
        equal_quality = row["val_bpp"] * 2 ** ((reference["val_psnr"] - row["val_psnr"]) / slope)
        row["rate_change"] = equal_quality / reference["val_bpp"] - 1
        print(f"| {row['block']} | {row['steps']} | {row['val_bpp']:.3f} | {row['val_psnr']:.2f} | {100 * row['rate_change']:+.1f} % |")
    if args.out:
        recipe = {k: v for k, v in base.__dict__.items() if k not in ("data", "hyper_attention")}
        args.out.write_text(json.dumps({"arch": args.arch, "minutes": args.minutes, "recipe": recipe,
                                        "db_per_doubling": slope, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
