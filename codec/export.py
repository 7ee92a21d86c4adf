"""From a training checkpoint to a registered model that `codec compress` can use."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

from codec.api import compress, decompress
from codec.errors import CodecError, ModelError
from codec.evaluate import measure_coded, summarize
from codec.fileio import image_files
from codec.image import open_image
from codec.training.checkpoint import Checkpoint
from codec.training.config import TrainConfig, data_folders, option_name
from codec.training.distributed import hardware
from codec.models.architectures import is_variable_rate
from codec.registry import SHIPPED_DIR, ModelCard, get_card, save_model, user_dir, write_manifest

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: str, ship: bool = False, force: bool = False) -> None:
    """Refuse a name that would replace a model without `force` (files coded with the old weights
    would no longer decode), or a user model of a shipped model's name (the shipped one hides it)."""
    if not NAME_PATTERN.fullmatch(name):
        raise CodecError(f"model name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not ship and (SHIPPED_DIR / f"{name}.json").exists():
        raise CodecError(f"model name {name!r} is a shipped model's: choose another")
    directory = SHIPPED_DIR if ship else user_dir()
    if (directory / f"{name}.json").exists() and not force:
        raise CodecError(f"model {name} already exists in {directory} "
                         "(use --force to replace it: files coded with it will no longer decode)")


def data_description(folder: str) -> str:
    """The training data as a manifest records it, never a machine's absolute path: the folder
    relative to the current directory when it is inside it, else its name, with a hash of the
    sorted list of the images in it (the files training reads) and their count."""
    absolute = Path(os.path.abspath(folder))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        pass
    try:
        files = sorted(path.relative_to(absolute).as_posix() for path in image_files(absolute))
    except CodecError:  # gone or emptied since training: only its name is known
        return absolute.name
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
    return f"{absolute.name} (sha256 {digest}, {len(files)} files)"


def training_command(config: TrainConfig) -> str:
    """The `codec train` command line that runs this recipe, as each field's metadata says to write it
    (codec/training/config.py): a flag for a bool, the option once per folder for the data."""
    words = ["codec train"]
    for field in dataclasses.fields(config):
        value, option = getattr(config, field.name), option_name(field)
        if not field.metadata["recorded"](config, field):
            continue
        if isinstance(value, bool):
            words.append(option if value else f"--no-{option[2:]}")
        elif field.metadata["several"]:
            words += [f"{option} {folder}" for folder in data_folders(value)]
        else:
            words.append(f"{option} {value:{field.metadata['number_format']}}")
    return " ".join(words)


def started_from(name: str) -> dict:
    """The model a fine-tuning run began with and how that one was trained, so that a rate point's
    manifest carries its whole history (a fine-tuned model's own includes its start, and so on)."""
    try:
        card = get_card(name)
    except ModelError:  # no longer registered: only its name is known
        return {"name": name}
    return {"name": card.name, "sha256": card.sha256, "training": card.training}


DEFAULT_QUALITY = 30.0  # a variable-rate model's, unless export is told another


def export_checkpoint(checkpoint: Path, name: str, ship: bool = False, default_quality: float | None = None,
                      kodak_dir: Path | None = None, force: bool = False) -> ModelCard:
    """Update the CDF tables, write weights + manifest, and optionally score the model on Kodak;
    an existing model of the name is replaced only with `force` (see check_name)."""
    check_name(name, ship, force)
    if not Path(checkpoint).is_file():
        raise CodecError(f"{checkpoint}: no such checkpoint")
    state = Checkpoint.load(Path(checkpoint))
    config = Checkpoint.config(state)
    config = dataclasses.replace(config, data=os.pathsep.join(map(data_description, data_folders(config.data))))  # for the manifest
    model = Checkpoint.model(state)
    model.update(force=True)
    variable = is_variable_rate(config.arch)
    if default_quality is not None and not (variable and 0 <= default_quality <= 100):
        raise CodecError("--default-quality is for a variable-rate model, from 0 to 100")
    if variable and default_quality is None:
        default_quality = DEFAULT_QUALITY
    training = {
        "command": training_command(config),
        "recipe": dataclasses.asdict(config),
        "steps": state["step"],
        "wall_seconds": round(state["elapsed"]),
        "hardware": state.get("hardware") or hardware(),
        **({"started_from": started_from(config.init)} if config.init else {}),
    }
    card = save_model(
        model.eval(), SHIPPED_DIR if ship else user_dir(), name=name, arch=config.arch, config=config.model_config(),
        lmbda=None if variable else config.lmbda, metric=config.metric, default_quality=default_quality, training=training,
    )
    if kodak_dir is not None:
        kodak = summarize([measure_coded(open_image(path), lambda image: compress(image, model=card.name), decompress)
                           for path in image_files(kodak_dir)])
        card = dataclasses.replace(card, kodak={k: v for k, v in kodak.items() if not k.endswith("_s")})
        write_manifest(card)
    return card
