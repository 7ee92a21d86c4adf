"""Learning speed: Kodak quality after a fixed wall-clock budget, our recipe against CompressAI's.

probe: CompressAI's recipe as its example training script runs it: bmshj2018-hyperprior
(ScaleHyperprior, N=128, M=192), its RateDistortionLoss, Adam 1e-4, aux Adam 1e-3, gradient clipping
at 1.0, batches of 8 random 128x128 crops. ours: `codec train`'s Trainer with its default recipe,
changed by --set KEY=VALUE (any TrainConfig field). Both at lambda 0.0067, fp32, the same threads.

The sides train in turns, a step at a time, each on its own clock until its budget is spent, so
that a noisy machine slows both alike; every --every minutes of a side's training (the clocks stop
while scoring) its weights are scored on the validation images: bpp from the likelihoods
and PSNR of the quantized forward pass, as in ../shared/notes. The two land at different rates, so
each of our points is also given as PSNR at the probe's final bpp, moved along the local slope of the
shipped models' Kodak curve (dB per doubling of bpp; an estimate, and said so). Verdict: the first
time that matched PSNR reaches the probe's final PSNR, and the speed-up, the probe's time over ours. Each side's curve goes to OUT/<side>.json; --reuse-probe reads the
probe's curve from there instead of training it again. Pause other work first.

    python benchmarks/learning_speed.py ../shared/data/train ../shared/data/kodak \
        --probe-minutes 20 --ours-minutes 5 --out docs/learning_speed

--per-lambda races instead the variable-rate recipe (gained-mean-scale-hyperprior, every crop at its
own rate) for --ours-minutes against three one-rate models (mean-scale-hyperprior) at its lowest,
middle and highest anchors' lambdas for a third of that each: equal compute for the three rates, all
from scratch with our recipe. Each rate is compared at equal total time (variable-rate at the end
against each one-rate model at its end) and at equal time per rate (variable-rate after a third of
its budget); PSNR is moved to the one-rate model's bpp along the local Kodak slope, as above.

    python benchmarks/learning_speed.py ../shared/data/train ../shared/data/kodak --per-lambda \
        --ours-minutes 12 --every 2 --set decay_fraction=0 --set crop=64 --out docs/learning_speed
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch

from codec.fileio import image_files
from codec.train import Trainer
from codec.training.config import TrainConfig
from codec.training.validation import load_validation
from codec.models.architectures import GainedMeanScaleHyperprior
from codec.registry import DEFAULT_MODEL
from codec.race import Contender, race, set_up_like_codec_train

LMBDA = 0.0067


class ProbeTrainer:
    """CompressAI's example recipe, stepped like our Trainer."""

    def __init__(self, data: str, seed: int = 0):
        from compressai.losses import RateDistortionLoss
        from compressai.models import ScaleHyperprior

        from codec.training.sampler import CropSampler

        torch.manual_seed(seed)
        self.model = ScaleHyperprior(128, 192).train()
        self.criterion = RateDistortionLoss(lmbda=LMBDA)
        parameters = dict(self.model.named_parameters())
        self.main = torch.optim.Adam([p for n, p in parameters.items() if not n.endswith(".quantiles")], lr=1e-4)
        self.aux = torch.optim.Adam([p for n, p in parameters.items() if n.endswith(".quantiles")], lr=1e-3)
        self.sampler = CropSampler(data, 128)
        self.generator = torch.Generator().manual_seed(seed)

    def step(self):
        x = self.sampler.batch(8, self.generator)
        self.main.zero_grad()
        self.aux.zero_grad()
        self.criterion(self.model(x), x)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.main.step()
        self.model.aux_loss().backward()
        self.aux.step()

    def result(self):
        return self.model


KODAK_CURVES = Path(__file__).resolve().parent.parent / "docs" / "kodak" / "curves.json"


def db_per_doubling(bpp: float) -> float:
    """Slope of the default model's Kodak curve (the committed report, docs/kodak/curves.json) around
    `bpp`, in dB per doubling of the rate."""
    curve = json.loads(KODAK_CURVES.read_text())[DEFAULT_MODEL]
    points = sorted((point["bpp"], point["psnr"]) for point in curve)
    pairs = list(zip(points, points[1:]))
    (r0, d0), (r1, d1) = min(pairs, key=lambda pair: abs(math.log(math.sqrt(pair[0][0] * pair[1][0]) / bpp)))
    return (d1 - d0) / math.log2(r1 / r0)


def apply_settings(config: TrainConfig, settings: list[str], parser: argparse.ArgumentParser) -> TrainConfig:
    """The recipe with each KEY=VALUE of --set applied, typed as the field's default."""
    for setting in settings:
        key, _, value = setting.partition("=")
        if not hasattr(config, key):
            parser.error(f"--set {setting}: no recipe field {key!r}")
        kind = type(getattr(config, key)) if getattr(config, key) is not None else str
        config = dataclasses.replace(config, **{key: value.lower() in ("1", "true") if kind is bool else kind(value)})
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of training images")
    parser.add_argument("kodak", help="folder of Kodak images; every 4th (kodim01, 05, ..., 21) is scored")
    parser.add_argument("--probe-minutes", type=float, default=20)
    parser.add_argument("--ours-minutes", type=float, default=5)
    parser.add_argument("--every", type=float, default=1.0, help="minutes of training between scores")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change our recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/learning_speed"))
    parser.add_argument("--reuse-probe", action="store_true", help="read the probe's curve from OUT/probe.json")
    parser.add_argument("--per-lambda", action="store_true", help="variable-rate recipe against one model per rate")
    args = parser.parse_args()
    set_up_like_codec_train(args.threads)  # both sides get it

    config = apply_settings(TrainConfig(data=args.data, lmbda=LMBDA), args.set, parser)
    files = image_files(args.kodak)[::4]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.per_lambda:
        return race_per_lambda(config, files, args)

    print(f"scoring on {', '.join(p.stem for p in files)}; ours: " +
          ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k not in ("data", "threads")))
    val_images = load_validation(files, 64, torch.device("cpu"))
    ours = Contender("ours", Trainer(config), args.ours_minutes * 60, config.steps)
    contenders = [ours]
    probe_path = args.out / "probe.json"
    if not args.reuse_probe:
        contenders.append(Contender("probe", ProbeTrainer(args.data), args.probe_minutes * 60))
    race(contenders, args.every * 60, val_images)
    if args.reuse_probe:
        probe = json.loads(probe_path.read_text())["curve"]
    else:
        probe = contenders[1].curve
        probe_path.write_text(json.dumps({"recipe": "CompressAI example, Adam 1e-4, batch 8 of 128^2", "curve": probe}, indent=1))

    target = probe[-1]
    slope = db_per_doubling(target["val_bpp"])
    print(f"probe after {target['minutes']:.1f} min: {target['val_bpp']:.3f} bpp / {target['val_psnr']:.2f} dB; "
          f"ours at that bpp ({slope:.2f} dB per doubling of bpp):")
    for point in ours.curve:
        point["psnr_at_probe_bpp"] = point["val_psnr"] + slope * math.log2(target["val_bpp"] / point["val_bpp"])
        print(f"  {point['minutes']:6.2f} min  {point['psnr_at_probe_bpp']:.2f} dB")
    (args.out / "ours.json").write_text(json.dumps({"recipe": dataclasses.asdict(config), "curve": ours.curve}, indent=1))
    reached = next((p for p in ours.curve if p["psnr_at_probe_bpp"] >= target["val_psnr"]), None)
    if reached:
        print(f"ours reached the probe's quality after {reached['minutes']:.1f} min: "
              f"{target['minutes'] / reached['minutes']:.1f}x the probe's learning speed")
    else:
        print("ours did not reach the probe's quality within its budget")


def race_per_lambda(config: TrainConfig, files: list[Path], args: argparse.Namespace):
    """The variable-rate recipe against one one-rate model per anchor it is scored at (see the
    module's docstring); writes OUT/per_lambda.json."""
    anchors = GainedMeanScaleHyperprior.anchor_lambdas
    positions = (0, (len(anchors) - 1) // 2, len(anchors) - 1)
    budget = args.ours_minutes * 60
    variable = Contender("variable", Trainer(dataclasses.replace(config, arch="gained-mean-scale-hyperprior", lmbda=None)), budget)
    singles = {p: Contender(f"lambda@{p}", Trainer(dataclasses.replace(config, lmbda=anchors[p])), budget / 3) for p in positions}
    val_images = load_validation(files, variable.trainer.model.downsampling, torch.device("cpu"))
    print(f"variable-rate {args.ours_minutes:g} min against one model per rate at lambda " +
          ", ".join(f"{anchors[p]:.4g}" for p in positions) + f", {args.ours_minutes / 3:g} min each")
    race([variable, *singles.values()], args.every * 60, val_images)

    third = min(variable.curve, key=lambda point: abs(point["minutes"] - args.ours_minutes / 3))
    rows = []
    print(f"\n| lambda | one-rate model, {args.ours_minutes / 3:g} min | variable-rate at {third['minutes']:g} min "
          f"(equal time per rate) | variable-rate at {args.ours_minutes:g} min (equal total time) |\n|---|---|---|---|")
    for p, single in singles.items():
        bpp, psnr = single.curve[-1]["val_bpp"], single.curve[-1]["val_psnr"]
        slope = db_per_doubling(bpp)
        row = {"lambda": anchors[p], "position": p, "single": single.curve[-1]}
        cells = []
        for name, point in (("equal_time_per_rate", third), ("equal_total_time", variable.curve[-1])):
            moved = point[f"val_psnr@{p}"] + slope * math.log2(bpp / point[f"val_bpp@{p}"])
            row[name] = {"minutes": point["minutes"], "bpp": point[f"val_bpp@{p}"], "psnr": point[f"val_psnr@{p}"],
                         "psnr_at_single_bpp": moved, "gain_db": moved - psnr}
            cells.append(f"{point[f'val_bpp@{p}']:.3f} bpp / {point[f'val_psnr@{p}']:.2f} dB ({moved - psnr:+.2f} dB at its rate)")
        rows.append(row)
        print(f"| {anchors[p]:.4g} | {bpp:.3f} bpp / {psnr:.2f} dB | " + " | ".join(cells) + " |")
    (args.out / "per_lambda.json").write_text(json.dumps({
        "recipe": dataclasses.asdict(config) | {"data": Path(args.data).name}, "minutes": args.ours_minutes,
        "rows": rows, "curves": {c.label: c.curve for c in (variable, *singles.values())}}, indent=1))


if __name__ == "__main__":
    main()
