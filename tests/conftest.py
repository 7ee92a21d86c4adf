"""Shared fixtures: generated images and a small registered model, so no test needs ../shared."""

import numpy as np
import pytest
import torch
from PIL import Image

from codec.models.architectures import build_model
from codec.models.coding import cpu_computes_bfloat16
from codec.models.registry import save_model

SMALL = {"N": 16, "M": 32}

# The precisions coding uses: float32 everywhere, bfloat16 where the CPU computes it natively (other
# CPUs emulate it, with no promise about tiles or thread counts, and coding never uses it there).
CODING_DTYPES = [
    torch.float32,
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(not cpu_computes_bfloat16(), reason="no native bfloat16 on this CPU")),
]


def natural_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour gradients plus a little texture: compressible like a photo, unlike noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([np.sin(3 * x + 1) * 0.4 + 0.5, np.cos(2 * y + x) * 0.4 + 0.5, (x + y) / 2.5 + 0.1], axis=-1)
    texture = rng.normal(0, 0.03, (height, width, 1))
    return Image.fromarray((np.clip(base + texture, 0, 1) * 255).astype(np.uint8), "RGB")


def small_model(arch: str = "mean-scale-hyperprior", seed: int = 0, **config):
    torch.manual_seed(seed)
    model = build_model(arch, **{**SMALL, **config})
    model.update(force=True)
    return model.eval()


@pytest.fixture
def codec_home(tmp_path, monkeypatch):
    """An empty user registry for this test."""
    monkeypatch.setenv("CODEC_HOME", str(tmp_path / "codec-home"))
    return tmp_path / "codec-home"


@pytest.fixture
def tiny_model(codec_home):
    """A small untrained mean-scale model registered as 'tiny' in the user registry."""
    from codec.models.registry import user_dir

    card = save_model(
        small_model(), user_dir(), name="tiny", arch="mean-scale-hyperprior",
        config={**SMALL, "hyper_attention": "none"}, lmbda=0.01, metric="mse",
    )
    return card


@pytest.fixture
def tiny_variable_model(codec_home):
    """A small untrained variable-rate model registered as 'tinyvr' in the user registry; its
    gains (1 to 100) make its latents, small before training, span a range of rates."""
    from codec.models.registry import user_dir

    model = small_model("gained-mean-scale-hyperprior", hyper_block=4)
    with torch.no_grad():
        model.gain.copy_(torch.logspace(0, 2, model.anchors)[:, None].expand_as(model.gain))
        model.inverse_gain.copy_(1 / model.gain)
    model.update(force=True)
    return save_model(
        model, user_dir(), name="tinyvr",
        arch="gained-mean-scale-hyperprior", config={**SMALL, "hyper_attention": "none", "hyper_block": 4},
        lmbda=None, metric="mse", default_quality=30.0,
    )


def image_folder(folder, width: int, height: int, prefix: str = ""):
    """A new folder of three generated images, PREFIX0.png to PREFIX2.png."""
    folder.mkdir()
    for i in range(3):
        natural_image(width, height, seed=i).save(folder / f"{prefix}{i}.png")
    return folder


@pytest.fixture
def dataset(tmp_path):
    """A folder of three small training images."""
    return image_folder(tmp_path / "data", 90, 70)


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "photo.png"
    natural_image(96, 72).save(path)
    return path
