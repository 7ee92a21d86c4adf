"""Training throughput: our training step in float32 and in bfloat16 against CompressAI's recipe step, in turns, in one process.

ours: `codec train`'s step (Trainer.step: our mean-scale hyperprior, RD loss, Adam, gradient
clipping, the aux step, the moving average) as the command runs it, subnormals flushed (for both
sides), freed memory kept (codec/allocator.py; --allocator default to leave
glibc as it is, which then applies to both sides). compressai: its bmshj2018-hyperprior
(ScaleHyperprior) with its RateDistortionLoss, Adam for the model and for the aux loss, as in its
example training script. Same width (N=128, M=192), same batches of crops, same threads; ours in
float32 and with g_a and g_s under bfloat16 autocast (`--precision bfloat16`: fast where the CPU
has AVX512-BF16 or AMX, emulated and slow elsewhere), CompressAI's in float32.
Reports seconds per step, samples and pixels per second, and the ratios. Pause other work first.

    python benchmarks/train_speed.py ../shared/data/train [--steps 10] [--crop 64]
        [--arch gained-mean-scale-hyperprior] [--allocator retain|default]
"""

import argparse
import dataclasses
import statistics
import time

import torch

from codec.allocator import retain_freed_memory
from codec.models.coding import cpu_computes_bfloat16
from codec.train import Trainer
from codec.training.config import TrainConfig
from codec.training.sampler import CropSampler


def compressai_recipe(config: TrainConfig):
    from compressai.losses import RateDistortionLoss
    from compressai.models import ScaleHyperprior

    model = ScaleHyperprior(config.N, config.M).train()
    criterion = RateDistortionLoss(lmbda=config.lmbda)
    main = torch.optim.Adam([p for n, p in model.named_parameters() if not n.endswith(".quantiles")], lr=1e-4)
    aux = torch.optim.Adam([p for n, p in model.named_parameters() if n.endswith(".quantiles")], lr=1e-3)

    def step(x):
        main.zero_grad()
        aux.zero_grad()
        criterion(model(x), x)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        main.step()
        model.aux_loss().backward()
        aux.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder of training images")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side (after 2 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="mean-scale-hyperprior", help="our side's architecture (codec train --arch)")
    parser.add_argument("--N", type=int, default=128, dest="n", help="channels of the transforms, both sides")
    parser.add_argument("--M", type=int, default=192, dest="m", help="channels of the latent, both sides")
    parser.add_argument("--allocator", choices=("retain", "default"), default="retain")
    args = parser.parse_args()
    if args.allocator == "retain":
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as `codec train` does (codec.training.distributed.subnormals_flushed)
    from codec.models.architectures import is_variable_rate

    config = TrainConfig(data=args.data, lmbda=None if is_variable_rate(args.arch) else 0.0067, arch=args.arch,
                         batch_size=args.batch_size, crop=args.crop, N=args.n, M=args.m)
    torch.manual_seed(0)
    sides = {f"ours {precision}": Trainer(dataclasses.replace(config, precision=precision)).step
             for precision in ("float32", "bfloat16")}
    sides["compressai"] = compressai_recipe(dataclasses.replace(config, lmbda=0.0067))
    sampler = CropSampler(config.data, config.crop)
    generator = torch.Generator().manual_seed(0)
    times = {side: [] for side in sides}
    for index in range(args.steps + 2):
        x = sampler.batch(config.batch_size, generator)
        for side, step in sides.items():
            start = time.perf_counter()
            step(x)
            if index >= 2:
                times[side].append(time.perf_counter() - start)
    print(f"{args.steps} steps per side, {args.arch} N={args.n} M={args.m}, batch {args.batch_size} x {args.crop}^2, {args.threads} threads, "
          f"allocator {args.allocator}, CPU bfloat16 arithmetic: {'yes' if cpu_computes_bfloat16() else 'no'}")
    medians = {side: statistics.median(values) for side, values in times.items()}
    for side, median in medians.items():
        pixels = args.batch_size * args.crop**2 / median
        print(f"  {side:15s} {median:.3f} s/step  {args.batch_size / median:6.2f} samples/s  {pixels / 1e6:5.2f} Mpixel/s")
    print(f"  throughput, ours bfloat16 / ours float32: {medians['ours float32'] / medians['ours bfloat16']:.2f}x")
    print(f"  throughput, ours float32 / CompressAI recipe: {medians['compressai'] / medians['ours float32']:.2f}x")


if __name__ == "__main__":
    main()
