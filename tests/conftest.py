"""Shared fixtures: generated images and a small registered model, so no test needs ../shared."""

import pytest

from codec.registry import save_model
from tests.helpers import SMALL, image_folder, natural_image, small_model, variable_model


@pytest.fixture
def codec_home(tmp_path, monkeypatch):
    """An empty user registry for this test."""
    monkeypatch.setenv("CODEC_HOME", str(tmp_path / "codec-home"))
    return tmp_path / "codec-home"


@pytest.fixture
def tiny_model(codec_home):
    """A small untrained mean-scale model registered as 'tiny' in the user registry."""
    from codec.registry import user_dir

    card = save_model(
        small_model(), user_dir(), name="tiny", arch="mean-scale-hyperprior",
        config={**SMALL, "hyper_attention": "none"}, lmbda=0.01, metric="mse",
    )
    return card


@pytest.fixture
def tiny_variable_model(codec_home):
    """A small untrained variable-rate model registered as 'tinyvr' in the user registry; its
    gains (1 to 100) make its latents, small before training, span a range of rates."""
    from codec.registry import user_dir

    model = variable_model()
    return save_model(
        model, user_dir(), name="tinyvr",
        arch="gained-mean-scale-hyperprior", config={**SMALL, "hyper_attention": "none", "hyper_block": 4},
        lmbda=None, metric="mse", default_quality=30.0,
    )


@pytest.fixture
def dataset(tmp_path):
    """A folder of three small training images."""
    return image_folder(tmp_path / "data", 90, 70)


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "photo.png"
    natural_image(96, 72).save(path)
    return path
