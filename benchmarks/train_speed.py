"""Training throughput: our training step against CompressAI's recipe step, alternately, in one process.

ours: `codec train`'s step (Trainer.step: our mean-scale hyperprior, RD loss, Adam, gradient
clipping, the aux step, the moving average) as the command runs it, subnormals flushed (for both
sides), freed memory kept (codec/allocator.py; --allocator default to leave
glibc as it is, which then applies to both sides). compressai: its bmshj2018-hyperprior
(ScaleHyperprior) with its RateDistortionLoss, Adam for the model and for the aux loss, as in its
example training script. Same width (N=128, M=192), same batches of crops, fp32, same threads.
Reports seconds per step, samples per second and the ratio. Pause other work first.

    python benchmarks/train_speed.py ../shared/data/train [--steps 10] [--allocator retain|default]
"""

import argparse
import statistics
import time

import torch

from codec.allocator import retain_freed_memory
from codec.train import CropSampler, Trainer, TrainConfig


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
    parser.add_argument("--allocator", choices=("retain", "default"), default="retain")
    args = parser.parse_args()
    if args.allocator == "retain":
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as `codec train` does (codec.train.subnormals_flushed)
    config = TrainConfig(data=args.data, lmbda=0.0067, batch_size=args.batch_size, crop=args.crop)
    torch.manual_seed(0)
    sides = {"ours": Trainer(config).step, "compressai": compressai_recipe(config)}
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
    print(f"{args.steps} steps per side, batch {args.batch_size} x {args.crop}^2, {args.threads} threads, allocator {args.allocator}")
    for side, values in times.items():
        median = statistics.median(values)
        print(f"  {side:10s} {median:.3f} s/step  {args.batch_size / median:6.2f} samples/s")
    ratio = statistics.median(times["compressai"]) / statistics.median(times["ours"])
    print(f"  throughput, ours / CompressAI recipe: {ratio:.2f}x")


if __name__ == "__main__":
    main()
