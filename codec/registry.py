"""The registry of named models: shipped rate points and the ones users export from `codec train`.

A model is two files side by side: NAME.pt (the weights, CDF tables included) and NAME.json (its
manifest: architecture, config, lambda, the sha256 of NAME.pt, how it was trained, its Kodak scores).
Shipped models live in models/weights/; exported ones in $CODEC_HOME (default ~/.local/share/codec).
Reading manifests needs no torch (`codec models` lists them without it); loading and saving weights
import it when called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codec.bitstream import HASH_BYTES
from codec.errors import ModelError
from codec.fileio import write_bytes_atomic

# The package codec.models (models/ in the repository) holds the shipped weights; found without
# importing it.
SHIPPED_DIR = Path(importlib.util.find_spec("codec.models").submodule_search_locations[0]) / "weights"
DEFAULT_MODEL = "vr3"
# Shipped models that left the package; their files decode once the weights are back (models/checkpoints/README.md).
RETIRED_MODELS = frozenset(["vr1", *(f"msh2-q{i}" for i in range(1, 8)), *(f"msh-q{i}" for i in range(1, 7))])


def user_dir() -> Path:
    return Path(os.environ.get("CODEC_HOME", Path.home() / ".local" / "share" / "codec")) / "models"


@dataclass(frozen=True)
class ModelCard:
    name: str
    arch: str
    config: dict
    lmbda: float | None  # None for a variable-rate model, which trains a range of them
    metric: str
    sha256: str
    default_quality: float | None = None  # a variable-rate model's quality when none is asked for
    training: dict = field(default_factory=dict)
    kodak: dict = field(default_factory=dict)  # mean bpp / PSNR / MS-SSIM of real files on Kodak
    directory: Path = SHIPPED_DIR

    @property
    def variable_rate(self) -> bool:
        from codec.models.architectures import is_variable_rate

        return is_variable_rate(self.arch)

    @property
    def weights_path(self) -> Path:
        return self.directory / f"{self.name}.pt"

    @property
    def weights_hash(self) -> bytes:
        return bytes.fromhex(self.sha256)[:HASH_BYTES]

    def manifest(self) -> dict:
        fields = asdict(self)
        del fields["directory"]
        return fields


def _cards_in(directory: Path) -> list[ModelCard]:
    cards = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            cards.append(ModelCard(**json.loads(path.read_text()), directory=directory))
        except (ValueError, TypeError) as error:
            raise ModelError(f"{path}: not a valid model manifest ({error})")
    return cards


def list_models() -> list[ModelCard]:
    """Shipped models first, then the user's; a user model may not shadow a shipped name."""
    shipped = _cards_in(SHIPPED_DIR)
    names = {card.name for card in shipped}
    return shipped + [card for card in _cards_in(user_dir()) if card.name not in names]


def get_card(name: str) -> ModelCard:
    for card in list_models():
        if card.name == name:
            return card
    known = ", ".join(card.name for card in list_models()) or "none"
    raise ModelError(f"unknown model {name!r} (known: {known})")


def default_card() -> ModelCard:
    """The shipped model that codes when no model is named."""
    return get_card(DEFAULT_MODEL)


_loaded: dict[tuple, torch.nn.Module] = {}


def load_model(card: ModelCard) -> torch.nn.Module:
    """The model of a card in eval mode, after checking its weights against the manifest's sha256."""
    try:
        stat = card.weights_path.stat()
    except OSError as error:
        raise ModelError(f"model {card.name}: cannot read weights {card.weights_path} ({error.strerror})")
    key = (card.weights_path, card.sha256, stat.st_mtime_ns, stat.st_size)  # a changed file is re-checked
    if key not in _loaded:
        _loaded[key] = _load_weights(card)
    return _loaded[key]


def _load_weights(card: ModelCard) -> torch.nn.Module:
    import torch

    from codec.models.architectures import build_model

    try:
        data = card.weights_path.read_bytes()
    except OSError as error:
        raise ModelError(f"model {card.name}: cannot read weights {card.weights_path} ({error.strerror})")
    if hashlib.sha256(data).hexdigest() != card.sha256:
        raise ModelError(f"model {card.name}: weights file does not match its manifest's sha256")
    # Ordinary tensors even when the first load happens under a caller's inference mode, and no
    # gradients of the weights: the encoder's search (models/refine.py) differentiates only the latents.
    with torch.inference_mode(False):
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model = build_model(card.arch, **card.config)
        model.load_state_dict({k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()})
    return model.requires_grad_(False).eval()


def compact_state(model: torch.nn.Module) -> dict:
    """The weights to ship: transforms in half precision; entropy models (and CDFs) and the rate
    gains, which decide the symbols, as they are."""
    state = {}
    for key, value in model.state_dict().items():
        exact = key.startswith(("entropy_bottleneck.", "gaussian_conditional.", "gain", "inverse_gain"))
        state[key] = value if exact or not value.is_floating_point() else value.half()
    return state


def save_model(model: torch.nn.Module, directory: Path, **card_fields) -> ModelCard:
    """Write NAME.pt and NAME.json for a trained model whose CDF tables are up to date."""
    import torch

    buffer = io.BytesIO()
    torch.save(compact_state(model), buffer)
    data = buffer.getvalue()
    card = ModelCard(sha256=hashlib.sha256(data).hexdigest(), directory=Path(directory), **card_fields)
    write_bytes_atomic(card.weights_path, data)
    write_manifest(card)
    return card


def write_manifest(card: ModelCard) -> None:
    write_bytes_atomic(card.directory / f"{card.name}.json", (json.dumps(card.manifest(), indent=2) + "\n").encode())
