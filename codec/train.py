"""Training on the rate-distortion loss: random crops, Adam, checkpoints that survive a kill.

The loss is lambda * 255^2 * MSE + bpp (or lambda * (1 - MS-SSIM) + bpp), with bpp taken from the
entropy models' likelihoods; the EntropyBottleneck's quantiles learn from their own auxiliary loss.
A run is resumable: its checkpoint holds the model, both optimizers, the step, the RNG state and the
training config, and is replaced atomically, so a kill loses at most the steps since the last one;
`codec pack` makes a copy of it small enough to commit, which resumes as well.
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
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from pytorch_msssim import ms_ssim
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from codec.errors import CodecError
from codec.fileio import atomic_write, image_files
from codec.synthetic import random_image
from codec.image import to_tensor
from codec.models.architectures import GainedMeanScaleHyperprior, build_model
from codec.models.widen import widened
from codec.registry import get_card, load_model

@dataclass
class TrainConfig:
    data: str
    lmbda: float | None  # None for a variable-rate architecture, which trains its anchors' lambdas
    arch: str = "mean-scale-hyperprior"
    N: int = 128
    M: int = 192
    hyper_attention: str = "none"
    hyper_block: int = 4  # latents a side of the blocks the hyperprior works on (64 pixels); 0: whole crops
    hyper_attention_in: str = "both"  # the transforms that carry hyper_attention: "both", or "h_a" (decoding stays exact)
    metric: str = "mse"
    steps: int = 5000
    batch_size: int = 8  # per process
    crop: int = 128
    lr: float = 1e-3
    warmup: int = 50
    decay_fraction: float = 0.5  # cosine decay of the learning rate over this last part of the run
    final_lr_ratio: float = 0.05
    aux_lr: float = 1e-3
    clip: float = 1.0
    ema: float = 0.99  # decay of the moving average of the weights that validation and export use; 0: none
    ste: bool = True  # g_s sees the rounded latent (straight-through), as in coding; the rate still sees noise
    seed: int = 0
    threads: int = 2  # shared among the processes
    init: str | None = None  # a registered model to start from (fine-tuning a new rate point)
    minutes: float | None = None  # a budget of training time: the run ends at it or at `steps`, whichever comes first
    device: str = "auto"  # cpu, cuda, or auto: CUDA where there is one
    precision: str = "float32"  # g_a's and g_s's arithmetic: float32 or bfloat16 (autocast); see trains_in_bfloat16
    rate_bias: float = 0.0  # variable-rate: crops' rate positions drawn with density ~ position^rate_bias (0: uniform)
    synthetic: float = 0.0  # share of crops generated (codec.synthetic) instead of cut from the data
    downscale: float = 0.0  # share of crops cut from a random antialiased downscale (1-2x) of their image

    def __post_init__(self):
        if not 0 <= self.rate_bias <= 10:
            raise CodecError(f"--rate-bias must be from 0 to 10 (got {self.rate_bias:g})")
        if self.rate_bias and self.lmbda is not None:
            raise CodecError("--rate-bias is for a variable-rate --arch (a one-rate model trains at its --lmbda)")
        for name in ("synthetic", "downscale"):
            if not 0 <= getattr(self, name) <= 1:
                raise CodecError(f"--{name} must be a share from 0 to 1 (got {getattr(self, name):g})")

    def model_config(self) -> dict:
        config = {"N": self.N, "M": self.M}
        if self.arch != "factorized":
            config.update(hyper_attention=self.hyper_attention, hyper_block=self.hyper_block, hyper_attention_in=self.hyper_attention_in)
        return config


def data_folders(data: str) -> list[str]:
    """The folders a recipe's `data` names: one, or several joined by os.pathsep (`--data` repeated)."""
    return data.split(os.pathsep)


class CropSampler:
    """Random crops from images held as uint8 on the training device, picked in proportion to their
    area: no JPEG decoding and no host-to-device copy per step. The picks are drawn on the host's
    generator, so a step asks nothing back of a GPU. A `synthetic` share of the crops is generated
    instead (codec.synthetic), and a `downscale` share is cut from a region up to twice the crop's
    side and shrunk to it with antialiasing, so that camera noise and JPEG artifacts wash out."""

    def __init__(self, data: str, crop: int, device: torch.device = torch.device("cpu"), synthetic: float = 0.0,
                 downscale: float = 0.0):
        self.crop, self.device, self.synthetic, self.downscale = crop, device, synthetic, downscale
        self.images = []
        for folder in data_folders(data):
            for path in image_files(folder):
                with Image.open(path) as image:
                    array = np.asarray(image.convert("RGB"))
                if min(array.shape[:2]) >= crop:
                    self.images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).to(device))
        if not self.images:
            raise CodecError(f"{data}: no image is at least {crop}x{crop}")
        areas = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float64)
        self.weights = areas / areas.sum()

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        picks = torch.multinomial(self.weights, size, replacement=True, generator=generator)
        crops = []
        for index in picks.tolist():
            if self.synthetic and torch.rand(1, generator=generator) < self.synthetic:
                crops.append(random_image(self.crop, generator).to(self.device))
                continue
            image = self.images[index]
            side = self.crop
            if self.downscale and torch.rand(1, generator=generator) < self.downscale:
                side = min(int(self.crop * 2 ** float(torch.rand(1, generator=generator))), *image.shape[1:])
            top = int(torch.randint(image.shape[1] - side + 1, (1,), generator=generator))
            left = int(torch.randint(image.shape[2] - side + 1, (1,), generator=generator))
            crop = image[:, top : top + side, left : left + side].float().div_(255)
            if side != self.crop:
                crop = F.interpolate(crop[None], size=self.crop, mode="bilinear", antialias=True)[0].clamp_(0, 1)
            if torch.rand(1, generator=generator) < 0.5:
                crop = crop.flip(2)
            crops.append(crop)
        return torch.stack(crops)


def likelihood_bpp(likelihoods: dict, num_pixels: int) -> torch.Tensor:
    """Bits per pixel as the entropy models estimate them, -log2 of every likelihood over `num_pixels`
    (codec.metrics.bits_per_pixel measures a file's bytes)."""
    return sum(torch.log(l).sum() for l in likelihoods.values()) / (-math.log(2) * num_pixels)


def rd_loss(output: dict, x: torch.Tensor, lmbda: float, metric: str) -> tuple[torch.Tensor, ...]:
    """(loss, bpp, mse) for a batch."""
    n, _, h, w = x.shape
    bpp = likelihood_bpp(output["likelihoods"], n * h * w)
    mse = F.mse_loss(output["x_hat"], x)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(output["x_hat"].clamp(0, 1), x, data_range=1.0)
    return lmbda * distortion + bpp, bpp, mse


# The variable-rate loss weighs each crop by (lambda / LOSS_REFERENCE)^-LOSS_EXPONENT, so that the low
# rates, whose losses are a hundred times smaller, still move the shared transforms.
LOSS_REFERENCE, LOSS_EXPONENT = 0.25, 0.6


def variable_rate_loss(output: dict, x: torch.Tensor, lambdas: torch.Tensor, metric: str) -> tuple[torch.Tensor, ...]:
    """(loss, bpp, mse) for a batch whose crops each have their own trade-off `lambdas` (N,)."""
    n, _, h, w = x.shape
    bpp = sum(torch.log(l).sum(dim=(1, 2, 3)) for l in output["likelihoods"].values()) / (-math.log(2) * h * w)
    mse = (output["x_hat"] - x).square().mean(dim=(1, 2, 3))
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        distortion = 1 - ms_ssim(output["x_hat"].clamp(0, 1), x, data_range=1.0, size_average=False)
    weights = (lambdas / LOSS_REFERENCE).pow(-LOSS_EXPONENT)
    return (weights * (lambdas * distortion + bpp)).mean(), bpp.mean(), mse.mean()


def rate_positions(count: int, anchors: int, bias: float, generator: torch.Generator) -> torch.Tensor:
    """`count` rate positions over the anchors' span [0, anchors - 1], with density proportional to
    position^bias: uniform at 0, toward the high rates above (whose transforms set the quality ceiling)."""
    return torch.rand(count, generator=generator).pow_(1 / (1 + bias)).mul_(anchors - 1)


def learning_rate(config: TrainConfig, step: int, progress: float | None = None) -> float:
    """Linear warm-up over the first steps, constant, then cosine decay to final_lr_ratio * lr over
    the last decay_fraction of the run. `progress` (0 to 1) is how far the run has come: step / steps,
    or, for a run with a time budget that ends first, the fraction of its minutes spent."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = step / config.steps if progress is None else progress
    decay_start = 1 - config.decay_fraction
    if progress < decay_start or config.decay_fraction == 0:
        return config.lr
    floor = config.lr * config.final_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - decay_start) / config.decay_fraction)))


def make_optimizers(model: torch.nn.Module, config: TrainConfig):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=config.lr), torch.optim.Adam(aux, lr=config.aux_lr)


@torch.no_grad()
def validate(model, images: list[tuple[torch.Tensor, int, int]]) -> dict:
    """Mean bpp (from likelihoods) and PSNR of the quantized forward pass on whole images, each
    given padded to the model's multiple with its true height and width. A variable-rate model is
    scored at its lowest, middle and highest anchors (val_bpp@P, val_psnr@P for each position P)."""
    model.eval()
    positions = [0, (model.anchors - 1) // 2, model.anchors - 1] if isinstance(model, GainedMeanScaleHyperprior) else [None]
    metrics = {}
    for position in positions:
        bpps, psnrs = [], []
        for x, h, w in images:
            out = model(x) if position is None else model(x, torch.tensor([float(position)], device=x.device))
            x_hat = out["x_hat"][..., :h, :w].clamp(0, 1)
            bpps.append(float(likelihood_bpp(out["likelihoods"], h * w)))
            psnrs.append(float(-10 * torch.log10(F.mse_loss(x_hat, x[..., :h, :w]))))
        suffix = "" if position is None else f"@{position}"
        metrics.update({f"val_bpp{suffix}": float(np.mean(bpps)), f"val_psnr{suffix}": float(np.mean(psnrs))})
    model.train()
    return metrics


class Checkpoint:
    """What a run needs to continue exactly where it stopped."""

    @staticmethod
    def save(path: Path, trainer_state: dict, config: TrainConfig, step: int, elapsed: float, rng: list[dict]):
        """`trainer_state` is Trainer.state(); `rng` holds each rank's random state (see rng_states)."""
        state = {
            "config": dataclasses.asdict(config),
            "step": step,
            "elapsed": elapsed,
            "hardware": hardware(),
            **trainer_state,
            "rng": rng,
        }
        atomic_write(path, lambda f: torch.save(state, f))

    @staticmethod
    def config(state: dict) -> TrainConfig:
        """The run's recipe; checkpoints from before the moving average, the straight-through
        rounding and the hyperprior's blocks existed trained without them."""
        return TrainConfig(**{"ema": 0.0, "ste": False, "hyper_block": 0, **state["config"]})

    @staticmethod
    def weights(state: dict) -> dict:
        """The model weights to ship from a loaded checkpoint: the moving average when it has one."""
        if "average" not in state:
            return state["model"]
        prefix = "module."
        return {k[len(prefix):]: v for k, v in state["average"].items() if k.startswith(prefix)}

    @staticmethod
    def model(state: dict) -> torch.nn.Module:
        """The model a loaded checkpoint ships: its architecture holding Checkpoint.weights."""
        config = Checkpoint.config(state)
        model = build_model(config.arch, **config.model_config())
        model.load_state_dict(Checkpoint.weights(state))
        return model

    @staticmethod
    def packed(state: dict) -> dict:
        """A copy of a loaded checkpoint about half its size, to commit: the weights stay float32, Adam's
        moments become bfloat16 (float32's range, so no tiny second moment flushes to zero), and the
        moving average is left out (at decay 0.99 it spans about a hundred steps; the resumed run
        restarts it from the weights). Resuming from it continues the run, though not bit for bit."""
        packed = {key: value for key, value in state.items() if key != "average"}
        for key in ("optimizer", "aux_optimizer"):
            moments = {
                index: {name: value.bfloat16() if name != "step" and value.is_floating_point() else value
                        for name, value in per_parameter.items()}
                for index, per_parameter in state[key]["state"].items()
            }
            packed[key] = {**state[key], "state": moments}
        return packed

    @staticmethod
    def load(path: Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # a file that is no checkpoint of ours
            raise CodecError(f"{path}: not a readable training checkpoint ({error.__class__.__name__})")


@contextlib.contextmanager
def subnormals_flushed():
    """Subnormal floats (gradients and Adam moments far below 1e-38) slow x86 arithmetic many times
    over; flushed to zero, training steps run faster and steadier. Training only: coding keeps IEEE
    arithmetic, and the flag is restored to torch's default after."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")


def training_device(choice: str) -> torch.device:
    """The device `--device` names: cpu, cuda (refused where there is none), or auto (CUDA if any)."""
    if choice not in DEVICES:
        raise CodecError(f"unknown --device {choice!r} (choose from {', '.join(DEVICES)})")
    if choice == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda: this machine has no CUDA device that torch can use")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def trains_in_bfloat16(precision: str) -> bool:
    """Whether g_a and g_s train under bfloat16 autocast (the hyperprior, the entropy models and
    the likelihoods stay float32). Not the default: on a CPU with AVX512-BF16 it took 1.26x the
    steps per minute, but fine-tuning `vr1` for 8 minutes each it ended 0.06 dB lower at the middle
    anchor and 0.15 dB at the highest (docs/training.md)."""
    if precision not in PRECISIONS:
        raise CodecError(f"unknown --precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return precision == "bfloat16"


@contextlib.contextmanager
def processes(device_choice: str = "auto"):
    """Yield (rank, world_size, device). Under torchrun (which sets WORLD_SIZE, RANK and LOCAL_RANK)
    join its process group, gloo on the CPU or nccl with one GPU per process, and leave it at the end."""
    device = training_device(device_choice)
    if device.type == "cuda":
        # TensorFloat-32 convolutions and products (those outside a bfloat16 autocast); the entropy
        # models' likelihoods are elementwise and stay float32.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: the fastest algorithms, chosen once
    if "WORLD_SIZE" not in os.environ:
        yield 0, 1, device
        return
    rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
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


def rng_states(generator: torch.Generator, device: torch.device) -> list[dict]:
    """Every rank's random state (its crops and its quantization noise), for an exact resume."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":  # the quantization noise is drawn on the GPU
        state["cuda_rng"] = torch.cuda.get_rng_state()
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


def init_source(init: str) -> tuple[str, dict, float | None]:
    """The architecture, model config and lambda (None: variable-rate) of what --init names: a
    training checkpoint's path, or a registered model."""
    if Path(init).is_file():
        saved = Checkpoint.config(Checkpoint.load(Path(init)))
        return saved.arch, saved.model_config(), saved.lmbda
    card = get_card(init)
    return card.arch, card.config, card.lmbda


def start_new_blocks_neutral(model: torch.nn.Module, missing: set[str]) -> set[str]:
    """Make each hyperprior block whose weights are all `missing` (the model started from does not
    have it) multiply by a constant, and divide the next convolution's weights by it, so that the
    model computes what the one it started from did; returns the weights this accounts for."""
    covered = set()
    for name in ("h_a", "h_s"):
        transform = getattr(model, name, None)
        for index, module in enumerate(transform or ()):
            keys = {f"{name}.{index}.{key}" for key in module.state_dict()}
            if hasattr(module, "make_neutral") and keys <= missing:
                scale = module.make_neutral()
                with torch.no_grad():
                    transform[index + 1].weight.div_(scale)  # every block comes before a convolution
                covered |= keys
    return covered


MAX_SKIPPED = 20


class Trainer:
    """One process's share of a run: the model, its optimizers, the moving average of its weights and
    the crops; `step()` takes one optimization step. `train` drives it by steps and checkpoints it;
    benchmarks/learning_speed.py drives it by the clock."""

    def __init__(self, config: TrainConfig, device: torch.device = torch.device("cpu"), rank: int = 0):
        self.config, self.device = config, device
        # Each rank draws its own crops and noise; DDP copies rank 0's initial weights to the others.
        torch.manual_seed(config.seed + rank)
        self.model = build_model(config.arch, **config.model_config()).to(device)
        self.model.synthesis_sees_rounding = config.ste
        self.model.training_in_bfloat16 = trains_in_bfloat16(config.precision)
        self.optimizers = make_optimizers(self.model, config)
        self.average = self.new_average()
        self.generator = torch.Generator().manual_seed(config.seed + rank)
        self.sampler = CropSampler(config.data, config.crop, device, config.synthetic, config.downscale)
        self.step_count = 0
        self.skipped = 0  # batches skipped in a row for non-finite gradients
        # The quantiles never reach the RD loss (training adds noise rather than subtracting their
        # medians), hence find_unused_parameters. Their aux loss runs on the bare model, outside DDP: it
        # reads only the quantiles and the detached density, equal on every rank, so each rank computes
        # the same aux gradient without an all-reduce. The buffers are constants: no need to broadcast them.
        self.forward = self.model
        if dist.is_initialized():
            self.forward = DistributedDataParallel(self.model, find_unused_parameters=True, broadcast_buffers=False)
        self.model.train()

    def new_average(self) -> AveragedModel | None:
        """A moving average starting from the current weights (None without --ema)."""
        if self.config.ema == 0:
            return None
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema), use_buffers=False)

    def start_from(self, init: str):
        """Fine-tune: begin with a registered model's weights, or with those of a training checkpoint
        (a path). A variable-rate model may start from a one-rate model of the same transforms: its
        gains then start at initial_gains of that model's lambda. A model may start from one without
        its hyperprior blocks, which then start neutral (start_new_blocks_neutral), or without the
        parts that its architecture starts neutral (a checkerboard context: neutral_extensions), or with
        a narrower latent, which is widened first (models/widen.py)."""
        if Path(init).is_file():
            state = Checkpoint.load(Path(init))
            source, lmbda = Checkpoint.model(state), Checkpoint.config(state).lmbda
        else:
            card = get_card(init)
            source, lmbda = load_model(card), card.lmbda
        if source.M < self.config.M:
            try:
                source = widened(source, self.config.M)
            except ValueError as error:
                raise CodecError(f"{init}: {error}")
        weights = source.state_dict()
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        missing = set(missing) - start_new_blocks_neutral(self.model, set(missing))
        missing = {key for key in missing if not key.startswith(self.model.neutral_extensions)}
        if unexpected or not missing <= {"gain", "inverse_gain", "gain_table"}:
            raise CodecError(f"{init}: its weights do not fit a {self.config.arch} model")
        if isinstance(self.model, GainedMeanScaleHyperprior) and "gain" in missing:
            with torch.no_grad():
                self.model.gain.copy_(self.model.initial_gains(lmbda))
                self.model.inverse_gain.copy_(1 / self.model.gain)
        self.average = self.new_average()

    def step(self, x: torch.Tensor | None = None, progress: float | None = None) -> dict:
        """One step on a fresh batch (or on `x`), `progress` through the run (see learning_rate);
        returns its loss, bpp, PSNR (of the noisy forward) and aux loss as tensors on the device (read
        them only when reporting: reading one waits for the GPU). The finiteness checks of the
        gradient and of the aux loss are the step's only waits."""
        config, (main, aux) = self.config, self.optimizers
        self.lr = learning_rate(config, self.step_count, progress)
        for group in main.param_groups:
            group["lr"] = self.lr
        if x is None:
            x = self.sampler.batch(config.batch_size, self.generator).to(self.device)
        if isinstance(self.model, GainedMeanScaleHyperprior):
            # Every crop its own rate: the whole curve trains at once.
            positions = rate_positions(x.shape[0], self.model.anchors, config.rate_bias, self.generator).to(self.device)
            output = self.forward(x, positions)
            loss, bpp, mse = variable_rate_loss(output, x, self.model.lambdas(positions), config.metric)
        else:
            loss, bpp, mse = rd_loss(self.forward(x), x, config.lmbda, config.metric)
        main.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(main.param_groups[0]["params"], config.clip if config.clip > 0 else math.inf)
        # A batch whose gradient is not finite is skipped rather than taken: one such step turns every
        # weight into NaN, and the next checkpoint would keep them.
        if not torch.isfinite(norm):
            self.skipped += 1
            if self.skipped >= MAX_SKIPPED:
                raise CodecError(f"training diverged: {MAX_SKIPPED} batches in a row had non-finite gradients")
        else:
            self.skipped = 0
            main.step()
        aux_loss = self.model.aux_loss()
        aux.zero_grad(set_to_none=True)
        aux_loss.backward()
        if torch.isfinite(aux_loss):
            aux.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        self.step_count += 1
        return {"loss": loss.detach(), "bpp": bpp.detach(), "psnr": -10 * mse.detach().log10(), "aux": aux_loss.detach()}

    def result(self) -> torch.nn.Module:
        """The weights to validate and ship: the moving average when there is one."""
        return self.model if self.average is None else self.average.module

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizers[0].state_dict(),
            "aux_optimizer": self.optimizers[1].state_dict(),
            **({"average": self.average.state_dict()} if self.average is not None else {}),
        }

    def load_state(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.optimizers[0].load_state_dict(state["optimizer"])
        self.optimizers[1].load_state_dict(state["aux_optimizer"])
        if self.average is not None:
            self.average = self.new_average()  # a run that gains a moving average starts it from its weights
            if "average" in state:
                # Through the model's own loader, which sizes the CDF tables that a model fine-tuned
                # from a registered one carries (a plain load_state_dict refuses their shapes).
                self.average.module.load_state_dict(Checkpoint.weights(state))
                self.average.n_averaged.copy_(state["average"]["n_averaged"])


# What a resumed run takes from its new command: its length, and where and how fast it runs.
RESUME_CHANGES = ("steps", "minutes", "data", "threads", "device", "precision")


def train(config: TrainConfig, out: Path, val_dir: str | None = None, val_every: int = 1000,
          checkpoint_seconds: float = 120.0, report=print, notice=print, asked: tuple[str, ...] = (),
          clock: Callable[[], float] = time.monotonic) -> Path:
    """Run (or resume) training until config.steps; returns the checkpoint path.

    `report(step, metrics)` is called every few steps; a log of JSON lines goes next to the checkpoint.
    Under torchrun every rank trains and only rank 0 reports, logs and checkpoints. `asked`: the
    fields of `config` the user set, of which a resume names those it ignores. `clock`: the seconds
    that the time budget (config.minutes) and the checkpoints' interval are counted in.
    """
    with processes(config.device) as (rank, world_size, device), subnormals_flushed():
        out = Path(out)
        resumed = Checkpoint.load(out) if out.exists() else None
        if resumed is not None:
            if resumed["step"] >= config.steps:
                raise CodecError(f"{out} is already at step {resumed['step']} (--steps {config.steps}): "
                                 "give more steps to train on, or `codec export` it")
            if config.minutes is not None and resumed["elapsed"] >= 60 * config.minutes:
                raise CodecError(f"{out} has already trained {resumed['elapsed'] / 60:.1f} minutes (--minutes {config.minutes:g})")
            saved = Checkpoint.config(resumed)
            ignored = [f"--{name.replace('_', '-')} {getattr(config, name)} (it has {getattr(saved, name)})"
                       for name in asked if name not in RESUME_CHANGES and getattr(config, name) != getattr(saved, name)]
            # A resumed run keeps its recipe; only RESUME_CHANGES may change.
            config = dataclasses.replace(saved, **{name: getattr(config, name) for name in RESUME_CHANGES})
            before, after = learning_rate(saved, resumed["step"]), learning_rate(config, resumed["step"])
        torch.set_num_threads(max(1, config.threads // world_size))
        trainer = Trainer(config, device, rank)
        elapsed = 0.0
        if resumed is not None:
            trainer.load_state(resumed)
            # Checkpoints from before multi-process training hold one state at the top level.
            saved_rng = resumed.get("rng", [resumed])
            if rank < len(saved_rng):
                trainer.generator.set_state(saved_rng[rank]["generator"])
                torch.set_rng_state(saved_rng[rank]["torch_rng"])
                if "cuda_rng" in saved_rng[rank] and device.type == "cuda":
                    torch.cuda.set_rng_state(saved_rng[rank]["cuda_rng"])
            trainer.step_count, elapsed = resumed["step"], resumed["elapsed"]
            if rank == 0:
                notice(f"resuming {out} at step {trainer.step_count}")
                if ignored:
                    notice(f"note: {out} resumes with its own recipe, ignoring " + ", ".join(ignored))
                if not math.isclose(before, after):
                    notice(f"note: the new length moves the learning rate from {before:.3g} to {after:.3g} at this step")
                if len(saved_rng) != world_size:
                    notice(f"{out} was trained with world size {len(saved_rng)}, not {world_size}: "
                           "the random crops differ from an uninterrupted run")
        elif config.init:
            trainer.start_from(config.init)
            if rank == 0:
                notice(f"starting from the weights of model {config.init}")
        val_images = load_validation(image_files(val_dir), trainer.model.downsampling, device) if val_dir and rank == 0 else []
        log_path = out.with_suffix(".log.jsonl")
        started = clock() - elapsed
        last_checkpoint = clock()
        window = {"loss": [], "bpp": [], "psnr": []}

        def progress() -> float:
            done = trainer.step_count / config.steps
            return done if config.minutes is None else max(done, (clock() - started) / (60 * config.minutes))

        finished = False
        while not finished:
            measured = trainer.step(progress=progress())
            step = trainer.step_count
            finished = rank0_decides(progress() >= 1, device)  # the clocks of the ranks differ
            for key in window:
                window[key].append(measured[key])
            metrics = None
            if step % 50 == 0 or finished:
                metrics = mean_over_ranks({k: float(torch.stack(v).mean()) for k, v in window.items()}, device)
                metrics.update(lr=trainer.lr, aux=float(measured["aux"]))
                window = {k: [] for k in window}
            if val_images and (step % val_every == 0 or finished):
                metrics = {**(metrics or {}), **validate(trainer.result(), val_images)}
            elapsed = clock() - started
            if rank == 0:
                if metrics is not None:
                    with open(log_path, "a") as log:
                        log.write(json.dumps({"step": step, "seconds": round(elapsed, 1), **metrics}) + "\n")
                report(step, metrics)
            if finished or rank0_decides(clock() - last_checkpoint >= checkpoint_seconds, device):
                rng = rng_states(trainer.generator, device)
                if rank == 0:
                    Checkpoint.save(out, trainer.state(), config, step, elapsed, rng)
                last_checkpoint = clock()
        return out


def load_validation(paths: list[Path], multiple: int, device: torch.device) -> list[tuple[torch.Tensor, int, int]]:
    """Validation images as `validate` takes them: padded tensors with their true height and width."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append((to_tensor(image, multiple).to(device), image.height, image.width))
    return images


def hardware() -> str:
    """What trained the model, for its manifest: the GPUs, or the CPU model and the threads used."""
    processes = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_initialized():  # the run trains there (not merely on a machine that has one: --device cpu)
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
