"""The checkpoint format: what a run needs to continue exactly where it stopped, replaced atomically
so that a kill loses at most the steps since the last one, and its packed copy to commit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from codec.errors import CodecError
from codec.fileio import atomic_write
from codec.models.architectures import build_model
from codec.training.config import TrainConfig
from codec.training.distributed import hardware


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
