"""Variants of `codec train`'s recipe fine-tuning one model, raced at equal wall-clock time.

Each variant is the recipe (the shipped variable-rate one by default: --crop 64, the given --lr, a
constant learning rate after the warm-up; with decay_fraction set, the decay runs over the last part
of the variant's minutes, as `codec train --minutes` does) with its own KEY=VALUE changes, started from the same
weights (--init: a registered model or a checkpoint) and seed; all train in turns a step at a time,
each on its own clock (codec/race.py), and are scored every --every minutes on every 4th Kodak
image (bpp from the likelihoods, PSNR of the quantized forward pass; a variable-rate model at its
lowest, middle and highest anchors). The last table moves each variant's PSNR to the first variant's
rate along the default model's Kodak curve (its local slope, learning_speed.db_per_doubling), an
estimate that says so. Pause other work first.

    python benchmarks/recipes.py ../shared/data/train ../shared/data/kodak --init vr1 --minutes 8 \
        --variant float32:precision=float32 --variant bfloat16:precision=bfloat16 --out docs/recipes/precision.json
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch

from codec.fileio import image_files
from codec.train import Trainer
from codec.training.checkpoint import Checkpoint
from codec.training.config import TrainConfig
from codec.training.distributed import rng_states
from codec.training.start import init_source
from codec.training.validation import load_validation, validate
from learning_speed import apply_settings, db_per_doubling
from codec.race import Contender, race, set_up_like_codec_train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of training images")
    parser.add_argument("kodak", help="folder of Kodak images; every 4th (kodim01, 05, ..., 21) is scored")
    parser.add_argument("--init", required=True, help="registered model or checkpoint every variant starts from")
    parser.add_argument("--variant", action="append", required=True, metavar="LABEL:KEY=VALUE,...",
                        help="a variant: its label, then its changes to the recipe (none: LABEL alone)")
    parser.add_argument("--minutes", type=float, default=8, help="training budget of each variant")
    parser.add_argument("--every", type=float, default=2, help="minutes of training between scores")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the curves as JSON here")
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="save each variant's result here as a training checkpoint, LABEL.ckpt (for `codec export`)")
    args = parser.parse_args()
    set_up_like_codec_train(args.threads)

    arch, model_config, lmbda = init_source(args.init)
    base = TrainConfig(data=args.data, lmbda=lmbda, arch=arch, crop=args.crop, lr=args.lr, decay_fraction=0.0, init=args.init,
                       threads=args.threads, steps=10**9, **model_config)
    contenders = []
    for variant in args.variant:
        label, _, changes = variant.partition(":")
        config = apply_settings(base, [c for c in changes.split(",") if c], parser)
        torch.manual_seed(config.seed)
        trainer = Trainer(config)
        trainer.start_from(args.init)
        contenders.append(Contender(label, trainer, args.minutes * 60, by_clock=True))
        changed = [f"{k}={getattr(config, k)}" for k in dataclasses.asdict(config) if getattr(config, k) != getattr(base, k)]
        print(f"{label}: " + (", ".join(changed) or "the recipe"))
    files = image_files(args.kodak)[::4]
    val_images = load_validation(files, contenders[0].trainer.model.downsampling, torch.device("cpu"))
    start = validate(contenders[0].trainer.result(), val_images)
    print("start: " + "  ".join(f"{start[k]:.3f} bpp / {start['val_psnr' + k[len('val_bpp'):]]:.2f} dB" for k in start if k.startswith("val_bpp")))
    race(contenders, args.every * 60, val_images)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for contender in contenders:
            trainer = contender.trainer
            Checkpoint.save(args.save / f"{contender.label}.ckpt", trainer.state(), trainer.config, contender.steps,
                            contender.trained_s, rng_states(trainer.generator, torch.device("cpu")))

    reference = contenders[0].curve[-1]
    print(f"\nafter {args.minutes:g} min each; PSNR moved to {contenders[0].label}'s rate (estimate, local slope of the default model's Kodak curve):")
    rows = []
    for contender in contenders:
        final = contender.curve[-1]
        row = {"label": contender.label, "steps": contender.steps}
        for key in (k for k in final if k.startswith("val_bpp")):
            suffix = key[len("val_bpp"):]
            bpp, psnr = final[key], final["val_psnr" + suffix]
            moved = psnr + db_per_doubling(reference[key]) * math.log2(reference[key] / bpp)
            row[f"at{suffix or ' its rate'}"] = {"bpp": bpp, "psnr": psnr, "psnr_at_reference_bpp": moved}
        rows.append(row)
        print(f"  {contender.label:10s} {contender.steps:6d} steps  " + "  ".join(
            f"{name}: {v['bpp']:.3f} bpp / {v['psnr']:.2f} dB ({v['psnr_at_reference_bpp']:.2f} dB at the reference rate)"
            for name, v in row.items() if isinstance(v, dict)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"init": args.init, "minutes": args.minutes, "recipe": dataclasses.asdict(base) | {"data": Path(args.data).name},
                                        "variants": args.variant, "start": start, "rows": rows,
                                        "curves": {c.label: c.curve for c in contenders}}, indent=1))


if __name__ == "__main__":
    main()
