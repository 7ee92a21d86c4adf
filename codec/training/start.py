"""A run that starts from another model's weights (--init): a registered model, or a training
checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from codec.errors import CodecError
from codec.models.architectures import is_variable_rate
from codec.models.widen import widened
from codec.registry import get_card, load_model
from codec.training.checkpoint import Checkpoint


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


def load_init(model: torch.nn.Module, arch: str, init: str) -> None:
    """Give `model`, of architecture `arch`, the weights of what `init` names: a registered model, or a
    training checkpoint (a path). A variable-rate model may start from a one-rate model of the same
    transforms: its gains then start at initial_gains of that model's lambda. A model may start from
    one without its hyperprior blocks, which then start neutral (start_new_blocks_neutral), or without
    the parts that its architecture starts neutral (a checkerboard context: neutral_extensions), or
    with a narrower latent, which is widened first (models/widen.py)."""
    if Path(init).is_file():
        state = Checkpoint.load(Path(init))
        source, lmbda = Checkpoint.model(state), Checkpoint.config(state).lmbda
    else:
        card = get_card(init)
        source, lmbda = load_model(card), card.lmbda
    if source.M < model.M:
        try:
            source = widened(source, model.M)
        except ValueError as error:
            raise CodecError(f"{init}: {error}")
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    missing = set(missing) - start_new_blocks_neutral(model, set(missing))
    missing = {key for key in missing if not key.startswith(model.neutral_extensions)}
    if unexpected or not missing <= {"gain", "inverse_gain", "gain_table"}:
        raise CodecError(f"{init}: its weights do not fit a {arch} model")
    if is_variable_rate(arch) and "gain" in missing:
        with torch.no_grad():
            model.gain.copy_(model.initial_gains(lmbda))
            model.inverse_gain.copy_(1 / model.gain)
