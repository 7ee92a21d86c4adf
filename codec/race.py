"""Recipes trained against each other at equal CPU time (benchmarks/learning_speed.py, hyperprior_blocks.py, recipes.py)."""

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from codec.allocator import retain_freed_memory
from codec.training.validation import validate


def set_up_like_codec_train(threads: int) -> None:
    """This process's allocator, threads and flushing of subnormals as `codec train` sets them
    (codec.training.distributed.subnormals_flushed), so that a race times what training runs."""
    retain_freed_memory()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


@dataclass
class Contender:
    """A recipe in a race (see `race`): anything with step() and result(), as codec.train.Trainer has."""

    label: str
    trainer: object
    budget_s: float
    max_steps: float = math.inf
    by_clock: bool = False  # the learning-rate schedule runs over budget_s (as `codec train --minutes`), not the steps
    trained_s: float = 0.0
    steps: int = 0
    curve: list = dataclasses.field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.trained_s >= self.budget_s or self.steps >= self.max_steps


def race(contenders: list[Contender], every_s: float, val_images, clock: Callable[[], float] = time.monotonic) -> None:
    """Train the contenders one step at a time, always the one furthest behind its budget, each on its
    own clock, and score each on the validation images whenever its clock passes a multiple of
    `every_s` and when it is done (the clocks stop while scoring). Interleaved steps make a noisy
    machine slow every recipe alike: how benchmarks compare recipes at equal CPU time. `clock`: the
    seconds the budgets are counted in."""
    while active := [c for c in contenders if not c.done]:
        contender = min(active, key=lambda c: c.trained_s / c.budget_s)
        start = clock()
        if contender.by_clock:
            contender.trainer.step(progress=contender.trained_s / contender.budget_s)
        else:
            contender.trainer.step()
        before, contender.trained_s = contender.trained_s, contender.trained_s + clock() - start
        contender.steps += 1
        if contender.done or int(contender.trained_s / every_s) > int(before / every_s):
            point = {"minutes": round(contender.trained_s / 60, 2), "steps": contender.steps,
                     **validate(contender.trainer.result(), val_images)}
            contender.curve.append(point)
            scores = "  ".join(f"{point[key]:.3f} bpp / {point['val_psnr' + key[len('val_bpp'):]]:.2f} dB"
                               for key in point if key.startswith("val_bpp"))
            print(f"  {contender.label:8s} {point['minutes']:6.2f} min  step {contender.steps:5d}  {scores}", flush=True)
