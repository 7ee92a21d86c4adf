"""The training recipe, written once: TrainConfig.

Each field carries what the rest of the tree needs of it in its metadata (see `option`): the
`codec train` option and its help (cli/main.py builds the command's options from them), how a
manifest's command line writes it (codec/export.py), whether a resumed run takes it from its new
command, and its check. The checks run whenever a recipe is made, from the command line or from
Python, so that `codec.train.train(config)` refuses what `codec train` refuses, in the same words.

Importing this module imports no torch: `codec --help` lists the options.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import MISSING, dataclass
from typing import Any, Callable

from codec.errors import CodecError

METRICS = ("mse", "ms-ssim")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")


def at_least_one(option: str, count: int) -> None:
    if count < 1:
        raise CodecError(f"{option} must be at least 1 (got {count})")


def positive(option: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise CodecError(f"{option} must be positive (got {value:g})")


def share(option: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise CodecError(f"{option} must be a share from 0 to 1 (got {value:g})")


def not_negative(option: str, value: float) -> None:
    if value < 0:
        raise CodecError(f"{option} must be at least 0 (got {value:g})")


def zero_to_ten(option: str, value: float) -> None:
    if not 0 <= value <= 10:
        raise CodecError(f"{option} must be from 0 to 10 (got {value:g})")


def below_one(option: str, value: float) -> None:
    if not 0 <= value < 1:
        raise CodecError(f"{option} must be in [0, 1) (got {value})")


def one_of(names: Callable[[], tuple[str, ...]]) -> Callable[[str, str], None]:
    """A check that the value is one of `names()`, which are asked for only when a value is checked
    (those of the architectures and the hyperprior's blocks import torch)."""

    def check(option: str, value: str) -> None:
        if value not in names():
            raise CodecError(f"unknown {option} {value!r} (choose from {', '.join(names())})")

    return check


def known_architecture(option: str, arch: str) -> None:
    from codec.models.architectures import ARCHITECTURES

    if arch not in ARCHITECTURES:
        raise CodecError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")


def known_metric(option: str, metric: str) -> None:
    if metric not in METRICS:
        raise CodecError(f"unknown metric {metric!r} (mse or ms-ssim)")


def hyper_attention_blocks() -> tuple[str, ...]:
    from codec.models.layers import HYPER_ATTENTION

    return tuple(HYPER_ATTENTION)


def hyper_attention_places() -> tuple[str, ...]:
    from codec.models.architectures import HYPER_ATTENTION_PLACES

    return HYPER_ATTENTION_PLACES


def always(config: TrainConfig, field: dataclasses.Field) -> bool:
    return True


def unless_default(config: TrainConfig, field: dataclasses.Field) -> bool:
    """Written only when it differs from its default (None for λ, which has none): λ, --init and
    --minutes when given, and the options added after the first manifests were written, so that the
    commands of earlier runs read as they did."""
    return getattr(config, field.name) != (None if field.default is MISSING else field.default)


def with_a_block(config: TrainConfig, field: dataclasses.Field) -> bool:
    """Where the hyperprior's block goes says nothing without a block."""
    return config.hyper_attention != "none"


def option(default: Any = MISSING, *, help: str, name: str | None = None, check: Callable[[str, Any], None] | None = None,
           recorded: Callable[[TrainConfig, dataclasses.Field], bool] = always, number_format: str = "",
           several: bool = False, changes_on_resume: bool = False) -> Any:
    """A recipe field and its metadata: `help`, its option's `name` (by default the field's, dashed;
    see option_name), the `check` of its value alone (called with the option's name and the value),
    whether a manifest's command line `recorded` it and with which `number_format`, whether the option
    may be given `several` times (the field joins the values with os.pathsep), and whether a resumed
    run takes it from its new command (`changes_on_resume`) rather than from its checkpoint."""
    metadata = {"help": help, "option": name, "check": check, "recorded": recorded, "number_format": number_format,
                "several": several, "changes_on_resume": changes_on_resume}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """A run's recipe, checked as it is made (see the module's docstring)."""

    data: str = option(help="Folder of training images (searched recursively); repeat it for several.",
                       several=True, changes_on_resume=True)
    lmbda: float | None = option(
        help="Rate-distortion trade-off λ (higher: more bits, better quality); not for the variable-rate architecture, "
             "which trains its anchors' λs at once.", check=positive, recorded=unless_default)
    arch: str = option(
        "mean-scale-hyperprior", check=known_architecture,
        help="factorized, scale-hyperprior, mean-scale-hyperprior, gained-mean-scale-hyperprior (every rate in one model) "
             "or gained-checkerboard-hyperprior (that, with a checkerboard context).")
    N: int = option(128, name="--N", help="Channels of the transforms.", check=at_least_one)
    M: int = option(192, name="--M", check=at_least_one,
                    help="Channels of the latent y; with --init, more than its model's widens it (the new channels start at zero).")
    hyper_attention: str = option(
        "none", check=one_of(hyper_attention_blocks),
        help="Block in the hyperprior: none, grn, gc, sge, gct; with --init of a model without one, it starts neutral.")
    hyper_attention_in: str = option(
        "both", check=one_of(hyper_attention_places), recorded=with_a_block,
        help="Where the block goes: both (h_a and h_s) or h_a (only the encoder runs it: decoding stays exact).")
    hyper_block: int = option(  # checked by the model (see check_together)
        4, help="Side, in latents, of the blocks the hyperprior works on alone (4: 64 pixels); 0: the whole image.")
    metric: str = option("mse", help="Distortion: mse or ms-ssim.", check=known_metric)
    steps: int = option(5000, help="Total training steps.", check=at_least_one, changes_on_resume=True)
    batch_size: int = option(8, help="Crops per step, per process (torchrun starts several).", check=at_least_one)
    crop: int = option(128, help="Crop side in pixels.")  # checked with the model and the metric (check_together)
    lr: float = option(1e-3, help="Peak learning rate (Adam).", check=positive)
    warmup: int = option(50, help="Steps of linear warm-up of the learning rate.")
    decay_fraction: float = option(0.5, help="Last part of the run over which the learning rate decays (cosine).")
    final_lr_ratio: float = option(0.05, help="Learning rate at the end of the decay, as a share of --lr.", check=share,
                                   recorded=unless_default)
    aux_lr: float = option(1e-3, help="Learning rate (Adam) of the entropy models' quantiles, on their own loss.",
                           check=positive, recorded=unless_default)
    clip: float = option(1.0, help="Norm the gradient is clipped to; 0: none.", check=not_negative, recorded=unless_default)
    ema: float = option(0.99, help="Decay of the moving average of the weights that are validated and shipped; 0: none.",
                        check=below_one)
    # The rate term still sees the uniform noise.
    ste: bool = option(True, help="g_s trains on the rounded latent (straight-through), as it decodes.")
    seed: int = option(0, help="Seed of the initial weights, the crops and the noise (each process adds its rank).",
                       recorded=unless_default)
    threads: int = option(2, help="CPU threads, shared among the processes.", check=at_least_one, recorded=unless_default,
                          changes_on_resume=True)
    init: str | None = option(
        None, recorded=unless_default,  # checked where it is read: the registry, or the checkpoint it names
        help="Start from this registered model's weights, or a training checkpoint's (a path); a variable-rate "
             "--arch may start from a one-rate model.")
    minutes: float | None = option(
        None, check=positive, recorded=unless_default, number_format="g", changes_on_resume=True,
        help="Train for at most this many minutes (the learning rate decays over them when they end the run first).")
    device: str = option("auto", help="cpu, cuda, or auto (CUDA where there is one).", check=one_of(lambda: DEVICES),
                         recorded=unless_default, changes_on_resume=True)
    precision: str = option(
        "float32", check=one_of(lambda: PRECISIONS), recorded=unless_default, changes_on_resume=True,
        help="Arithmetic of g_a and g_s: float32, or bfloat16 (autocast: more steps a minute on a CPU with AVX512-BF16, "
             "but it learned less per minute when measured, docs/training.md).")
    rate_bias: float = option(
        0.0, check=zero_to_ten, recorded=unless_default, number_format="g",
        help="Variable-rate: draw the crops' rates with density ~ position^B, toward the high rates (0: uniform; up to 10).")
    synthetic: float = option(
        0.0, check=share, recorded=unless_default, number_format="g",
        help="Share of crops generated (flat colours, gradients, stripes, edges, glyphs, noise) instead of cut from --data.")
    downscale: float = option(0.0, help="Share of crops cut from a random antialiased 1-2x downscale of their image.",
                              check=share, recorded=unless_default, number_format="g")

    def __post_init__(self):
        check_values({field.name: getattr(self, field.name) for field in dataclasses.fields(self)})
        self.check_together()

    def check_together(self):
        """The checks that take more than one field, after each field's own."""
        import torch

        from codec.models.architectures import build_model, is_variable_rate

        if self.warmup < 0 or not 0 <= self.decay_fraction <= 1:
            raise CodecError(f"--warmup must be at least 0 and --decay-fraction in [0, 1] (got {self.warmup}, {self.decay_fraction})")
        if (self.lmbda is None) != is_variable_rate(self.arch):
            raise CodecError(f"--lmbda is needed for {self.arch}" if self.lmbda is None else
                             f"{self.arch} trains every rate at once (its anchors' λs): give no --lmbda")
        if self.rate_bias and self.lmbda is not None:
            raise CodecError("--rate-bias is for a variable-rate --arch (a one-rate model trains at its --lmbda)")
        if self.metric == "ms-ssim" and self.crop < 161:
            raise CodecError("MS-SSIM training needs --crop of at least 161 (its five scales)")
        try:  # what the model checks itself: the hyperprior's blocks, SGE's groups (which must divide the channels)
            with torch.random.fork_rng(devices=[]):  # built only to be asked: the caller's random numbers stay as they were
                multiple = build_model(self.arch, **self.model_config()).downsampling
        except ValueError as error:
            raise CodecError(f"--arch {self.arch} --N {self.N} --M {self.M} --hyper-attention {self.hyper_attention} "
                             f"--hyper-attention-in {self.hyper_attention_in} --hyper-block {self.hyper_block}: {error}")
        if self.crop < multiple or self.crop % multiple:
            raise CodecError(f"--crop must be a multiple of {multiple} for {self.arch} (got {self.crop})")

    def model_config(self) -> dict:
        config = {"N": self.N, "M": self.M}
        if self.arch != "factorized":
            config.update(hyper_attention=self.hyper_attention, hyper_block=self.hyper_block, hyper_attention_in=self.hyper_attention_in)
        return config


def option_name(field: dataclasses.Field) -> str:
    """The `codec train` option that sets a field: --batch-size for batch_size."""
    return field.metadata["option"] or "--" + field.name.replace("_", "-")


FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}

# What a resumed run takes from its new command: its length, its data, and where and how fast it runs.
RESUME_CHANGES = tuple(name for name, field in FIELDS.items() if field.metadata["changes_on_resume"])


def check_values(values: dict) -> None:
    """Check each of a recipe's values alone. TrainConfig does, before the checks across fields;
    `codec train` does first, as a resume's recipe and --init's model replace some of them."""
    for name, value in values.items():
        check = FIELDS[name].metadata["check"]
        if check is not None:
            check(option_name(FIELDS[name]), value)


def data_folders(data: str) -> list[str]:
    """The folders a recipe's `data` names: one, or several joined by os.pathsep (`--data` repeated)."""
    return data.split(os.pathsep)
