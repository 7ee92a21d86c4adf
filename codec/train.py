"""Training on the rate-distortion loss: random crops, Adam, checkpoints that survive a kill.

The loss is lambda * 255^2 * MSE + bpp (or lambda * (1 - MS-SSIM) + bpp), with bpp taken from the
entropy models' likelihoods; the EntropyBottleneck's quantiles learn from their own auxiliary loss.
A run is resumable: its checkpoint holds the model, both optimizers, the step, the RNG state and the
training config, and is replaced atomically, so a kill loses at most the steps since the last one.
Under torchrun each process trains on its own crops and DistributedDataParallel averages the gradients;
rank 0 alone writes, prints and registers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from pytorch_msssim import ms_ssim
from torch.nn.parallel import DistributedDataParallel

from codec.errors import CodecError
from codec.fileio import atomic_write, image_files
from codec.image import to_tensor
from models.architectures import build_model
from models.registry import get_card, load_model

@dataclass
class TrainConfig:
    data: str
    lmbda: float
    arch: str = "mean-scale-hyperprior"
    N: int = 128
    M: int = 192
    hyper_attention: str = "none"
    metric: str = "mse"
    steps: int = 5000
    batch_size: int = 8  # per process
    crop: int = 128
    lr: float = 5e-4
    warmup: int = 200
    decay_fraction: float = 0.25  # cosine decay of the learning rate over this last part of the run
    final_lr_ratio: float = 0.05
    aux_lr: float = 1e-3
    clip: float = 1.0
    seed: int = 0
    threads: int = 2  # shared among the processes
    init: str | None = None  # a registered model to start from (fine-tuning a new rate point)

    def model_config(self) -> dict:
        config = {"N": self.N, "M": self.M}
        if self.arch != "factorized":
            config["hyper_attention"] = self.hyper_attention
        return config


class CropSampler:
    """Random crops from images held in memory as uint8, picked in proportion to their area, so the
    two cores never wait on JPEG decoding."""

    def __init__(self, folder: str | Path, crop: int):
        self.crop = crop
        self.images = []
        for path in image_files(folder):
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            if min(array.shape[:2]) >= crop:
                self.images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
        if not self.images:
            raise CodecError(f"{folder}: no image is at least {crop}x{crop}")
        areas = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float64)
        self.weights = areas / areas.sum()

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        picks = torch.multinomial(self.weights, size, replacement=True, generator=generator)
        crops = []
        for index in picks.tolist():
            image = self.images[index]
            top = int(torch.randint(image.shape[1] - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(image.shape[2] - self.crop + 1, (1,), generator=generator))
            crop = image[:, top : top + self.crop, left : left + self.crop]
            if torch.rand(1, generator=generator) < 0.5:
                crop = crop.flip(2)
            crops.append(crop)
        return torch.stack(crops).float().div_(255)


def bits_per_pixel(likelihoods: dict, num_pixels: int) -> torch.Tensor:
    return sum(torch.log(l).sum() for l in likelihoods.values()) / (-math.log(2) * num_pixels)


def rd_loss(output: dict, x: torch.Tensor, lmbda: float, metric: str) -> tuple[torch.Tensor, ...]:
    """(loss, bpp, mse) for a batch."""
    n, _, h, w = x.shape
    bpp = bits_per_pixel(output["likelihoods"], n * h * w)
    mse = F.mse_loss(output["x_hat"], x)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(output["x_hat"].clamp(0, 1), x, data_range=1.0)
    return lmbda * distortion + bpp, bpp, mse


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, constant, then cosine decay to final_lr_ratio * lr over the last part."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    decay_start = int(config.steps * (1 - config.decay_fraction))
    if step < decay_start:
        return config.lr
    progress = (step - decay_start) / max(1, config.steps - decay_start)
    floor = config.lr * config.final_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizers(model: torch.nn.Module, config: TrainConfig):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=config.lr), torch.optim.Adam(aux, lr=config.aux_lr)


@torch.no_grad()
def validate(model, images: list[tuple[torch.Tensor, int, int]]) -> dict:
    """Mean bpp (from likelihoods) and PSNR of the quantized forward pass on whole images, each
    given padded to the model's multiple with its true height and width."""
    model.eval()
    bpps, psnrs = [], []
    for x, h, w in images:
        out = model(x)
        x_hat = out["x_hat"][..., :h, :w].clamp(0, 1)
        bpps.append(float(bits_per_pixel(out["likelihoods"], h * w)))
        psnrs.append(float(-10 * torch.log10(F.mse_loss(x_hat, x[..., :h, :w]))))
    model.train()
    return {"val_bpp": float(np.mean(bpps)), "val_psnr": float(np.mean(psnrs))}


class Checkpoint:
    """What a run needs to continue exactly where it stopped."""

    @staticmethod
    def save(path: Path, model, optimizers, config: TrainConfig, step: int, elapsed: float, rng: list[dict]):
        """`rng` holds each rank's random state (see rng_states)."""
        state = {
            "config": dataclasses.asdict(config),
            "step": step,
            "elapsed": elapsed,
            "hardware": hardware(),
            "model": model.state_dict(),
            "optimizer": optimizers[0].state_dict(),
            "aux_optimizer": optimizers[1].state_dict(),
            "rng": rng,
        }
        atomic_write(path, lambda f: torch.save(state, f))

    @staticmethod
    def load(path: Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # a file that is no checkpoint of ours
            raise CodecError(f"{path}: not a readable training checkpoint ({error.__class__.__name__})")


@contextlib.contextmanager
def processes():
    """Yield (rank, world_size, device). Under torchrun (which sets WORLD_SIZE, RANK and LOCAL_RANK)
    join its process group, gloo on the CPU or nccl with one GPU per process, and leave it at the end."""
    if "WORLD_SIZE" not in os.environ:
        yield 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return
    rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = torch.device("cpu")
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise CodecError(f"more processes per node than the {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    try:
        yield rank, world_size, device
    finally:
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 under torchrun, or the only process: the one that writes, prints and registers."""
    return int(os.environ.get("RANK", "0")) == 0


def rng_states(generator: torch.Generator) -> list[dict]:
    """Every rank's random state (its crops and its quantization noise), for an exact resume."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if not dist.is_initialized():
        return [state]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def rank0_decides(flag: bool, device: torch.device) -> bool:
    """Rank 0's flag on every rank: the ranks' clocks differ, but they must checkpoint at the same step."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


def mean_over_ranks(metrics: dict, device: torch.device) -> dict:
    """The metrics averaged over the ranks, so that the log describes the whole batch."""
    if not dist.is_initialized():
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)  # a sum: gloo has no average
    return dict(zip(metrics, (values / dist.get_world_size()).tolist()))


def train(config: TrainConfig, out: Path, val_dir: str | None = None, val_every: int = 1000,
          checkpoint_seconds: float = 120.0, report=print, notice=print) -> Path:
    """Run (or resume) training until config.steps; returns the checkpoint path.

    `report(step, metrics)` is called every few steps; a log of JSON lines goes next to the checkpoint.
    Under torchrun every rank trains and only rank 0 reports, logs and checkpoints.
    """
    with processes() as (rank, world_size, device):
        out = Path(out)
        resumed = Checkpoint.load(out) if out.exists() else None
        if resumed is not None:
            saved = TrainConfig(**resumed["config"])
            # A resumed run keeps its recipe; only the length, the data path and the threads may change.
            config = dataclasses.replace(saved, steps=config.steps, data=config.data, threads=config.threads)
        torch.set_num_threads(max(1, config.threads // world_size))
        # Each rank draws its own crops and noise; DDP copies rank 0's initial weights to the others.
        torch.manual_seed(config.seed + rank)
        model = build_model(config.arch, **config.model_config()).to(device)
        optimizers = make_optimizers(model, config)
        generator = torch.Generator().manual_seed(config.seed + rank)
        step, elapsed = 0, 0.0
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            optimizers[0].load_state_dict(resumed["optimizer"])
            optimizers[1].load_state_dict(resumed["aux_optimizer"])
            # Checkpoints from before multi-process training hold one state at the top level.
            saved_rng = resumed.get("rng", [resumed])
            if rank < len(saved_rng):
                generator.set_state(saved_rng[rank]["generator"])
                torch.set_rng_state(saved_rng[rank]["torch_rng"])
            step, elapsed = resumed["step"], resumed["elapsed"]
            if rank == 0:
                notice(f"resuming {out} at step {step}")
                if len(saved_rng) != world_size:
                    notice(f"{out} was trained with world size {len(saved_rng)}, not {world_size}: "
                           "the random crops differ from an uninterrupted run")
        elif config.init:
            model.load_state_dict(load_model(get_card(config.init)).state_dict())
            if rank == 0:
                notice(f"starting from the weights of model {config.init}")
        # The quantiles never reach the RD loss (training adds noise rather than subtracting their
        # medians), hence find_unused_parameters. Their aux loss runs on the bare model, outside DDP: it
        # reads only the quantiles and the detached density, equal on every rank, so each rank computes
        # the same aux gradient without an all-reduce. The buffers are constants: no need to broadcast them.
        forward = model
        if dist.is_initialized():
            forward = DistributedDataParallel(model, find_unused_parameters=True, broadcast_buffers=False)
        sampler = CropSampler(config.data, config.crop)
        val_images = []
        if val_dir and rank == 0:
            for path in image_files(val_dir):
                with Image.open(path) as image:
                    val_images.append((to_tensor(image, model.downsampling).to(device), image.height, image.width))
        log_path = out.with_suffix(".log.jsonl")
        model.train()
        started = time.monotonic() - elapsed
        last_checkpoint = time.monotonic()
        window = {"loss": [], "bpp": [], "psnr": []}
        while step < config.steps:
            for group in optimizers[0].param_groups:
                group["lr"] = learning_rate(config, step)
            x = sampler.batch(config.batch_size, generator).to(device)
            output = forward(x)
            loss, bpp, mse = rd_loss(output, x, config.lmbda, config.metric)
            optimizers[0].zero_grad(set_to_none=True)
            loss.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(optimizers[0].param_groups[0]["params"], config.clip)
            optimizers[0].step()
            aux_loss = model.aux_loss()
            optimizers[1].zero_grad(set_to_none=True)
            aux_loss.backward()
            optimizers[1].step()
            step += 1
            window["loss"].append(loss.item())
            window["bpp"].append(bpp.item())
            window["psnr"].append(-10 * math.log10(mse.item()))
            metrics = None
            if step % 50 == 0 or step == config.steps:
                metrics = mean_over_ranks({k: float(np.mean(v)) for k, v in window.items()}, device)
                metrics.update(lr=learning_rate(config, step - 1), aux=aux_loss.item())
                window = {k: [] for k in window}
            if val_images and (step % val_every == 0 or step == config.steps):
                metrics = {**(metrics or {}), **validate(model, val_images)}
            elapsed = time.monotonic() - started
            if rank == 0:
                if metrics is not None:
                    with open(log_path, "a") as log:
                        log.write(json.dumps({"step": step, "seconds": round(elapsed, 1), **metrics}) + "\n")
                report(step, metrics)
            if rank0_decides(time.monotonic() - last_checkpoint >= checkpoint_seconds or step == config.steps, device):
                rng = rng_states(generator)
                if rank == 0:
                    Checkpoint.save(out, model, optimizers, config, step, elapsed, rng)
                last_checkpoint = time.monotonic()
        return out


def hardware() -> str:
    """What trained the model, for its manifest: the GPUs, or the CPU model and the threads used."""
    processes = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return name if processes == 1 else f"{processes} x {name}"
    cpu = platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = f"{names[0]} ({platform.machine()})" if names else cpu
    except OSError:
        pass
    threads = f"{torch.get_num_threads()} threads"
    return f"CPU {cpu}, " + (threads if processes == 1 else f"{processes} processes x {threads}")
