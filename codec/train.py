"""Training on the rate-distortion loss: `train` runs (or resumes) a run of Trainer's steps and
checkpoints it. Its parts, one job each, are in codec/training/: the recipe (config), the crops
(sampler), the losses, validation, the checkpoint format, the processes and devices (distributed)
and the start from another model's weights (start).

The EntropyBottleneck's quantiles learn from their own auxiliary loss, with their own optimizer.
A run is resumable: its checkpoint holds the model, both optimizers, the step, the RNG state and the
training config; `codec pack` makes a copy of it small enough to commit, which resumes as well.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from codec.errors import CodecError
from codec.fileio import image_files
from codec.models.architectures import build_model, is_variable_rate
from codec.training.checkpoint import Checkpoint
from codec.training.config import FIELDS, RESUME_CHANGES, TrainConfig, option_name
from codec.training.distributed import mean_over_ranks, processes, rank0_decides, rng_states, subnormals_flushed
from codec.training.losses import rd_loss, variable_rate_loss
from codec.training.sampler import CropSampler, rate_positions
from codec.training.start import load_init
from codec.training.validation import load_validation, validate


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
        # Not the default: bfloat16 took more steps a minute but learned less per minute (docs/training.md).
        self.model.training_in_bfloat16 = config.precision == "bfloat16"
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
        """Fine-tune: begin with the weights of what `init` names (codec.training.start.load_init),
        and the moving average with them."""
        load_init(self.model, self.config.arch, init)
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
        if is_variable_rate(config.arch):
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
            ignored = [f"{option_name(FIELDS[name])} {getattr(config, name)} (it has {getattr(saved, name)})"
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
