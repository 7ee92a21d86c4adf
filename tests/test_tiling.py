"""Tiled coding: the latents and pixels of coding in one piece, without seams, with any thread count."""

import numpy as np
import pytest
import torch

import codec
from codec.image import to_image, to_tensor
from codec.metrics import psnr
from codec.models import coding
from codec.models.exact import exact_forward
from codec.registry import load_model
from codec.models.tiling import blockwise
from tests.helpers import CODING_DTYPES, natural_image, small_model


def set_tiles(monkeypatch, analysis: int, synthesis: int, hyper: int, analysis_halo: int = 32, whole: int = 0):
    monkeypatch.setattr(coding, "WHOLE_PIXELS", whole)
    monkeypatch.setattr(coding, "ANALYSIS_TILE", analysis)
    monkeypatch.setattr(coding, "ANALYSIS_HALO", analysis_halo)
    monkeypatch.setattr(coding, "SYNTHESIS_TILE", synthesis)
    monkeypatch.setattr(coding, "HYPER_TILE", hyper)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 128 pixels, 8 latents and 2 hyper-latents: small images cross many tile boundaries."""
    set_tiles(monkeypatch, 128, 8, 2)


@pytest.mark.parametrize("dtype", CODING_DTYPES)
def test_tiled_transforms_compute_what_the_whole_image_pass_does(monkeypatch, dtype):
    model = small_model(N=32, M=48)
    monkeypatch.setattr(coding, "DTYPE", dtype)
    x = to_tensor(natural_image(448, 320))
    with torch.inference_mode():
        set_tiles(monkeypatch, 128, 8, 2, whole=1 << 30)
        y = model.coding_analysis(x)
        y_hat = torch.round(y * 20)
        x_hat = model.coding_synthesis(y_hat)
        set_tiles(monkeypatch, 128, 8, 2)
        assert torch.allclose(model.coding_analysis(x), y, atol=1e-5)
        assert torch.allclose(model.coding_synthesis(y_hat), x_hat, atol=1e-5)


@pytest.mark.parametrize("arch", ["scale-hyperprior", "mean-scale-hyperprior"])
def test_tiled_hyper_synthesis_gives_the_same_integers(small_tiles, arch):
    model = small_model(arch)
    z_hat = torch.round(torch.randn(1, 16, 7, 10, generator=torch.Generator().manual_seed(1)) * 3)
    with torch.inference_mode():
        assert torch.equal(model.coding_hyper_synthesis(z_hat), exact_forward(model.h_s, z_hat))


def test_a_halo_shorter_than_the_reach_is_caught(monkeypatch):
    set_tiles(monkeypatch, 128, 8, 2, analysis_halo=16)
    model = small_model(N=32, M=48)
    x = to_tensor(natural_image(448, 320))
    with torch.inference_mode():
        assert not torch.allclose(model.coding_analysis(x), model.g_a(x), atol=1e-3)


@pytest.fixture
def threads():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("dtype", CODING_DTYPES)
def test_tiled_coding_round_trips_exactly(small_tiles, tiny_model, threads, monkeypatch, dtype):
    """The decoder rebuilds the encoder's quantized latents and reconstruction to the bit, with
    1, 2 or 3 threads, in either precision that coding uses."""
    monkeypatch.setattr(coding, "DTYPE", dtype)
    image = natural_image(330, 270)
    data = codec.compress(image, model="tiny")
    model = load_model(tiny_model)
    with torch.inference_mode():
        x_hat = model.coding_estimate(to_tensor(image, model.downsampling))["x_hat"]
    expected = np.asarray(to_image(x_hat[..., :270, :330], "RGB"))
    for count in (1, 2, 3):
        torch.set_num_threads(count)
        assert np.array_equal(np.asarray(codec.decompress(data)), expected)


def test_tile_boundaries_are_invisible(monkeypatch):
    """The shipped default model, coded in tiles of 128 pixels / 8 latents and in one piece: the same
    PSNR to 0.05 dB (the issue's criterion) and the same size to 0.5 %."""
    image = natural_image(512, 384, seed=3)
    results = {}
    for name, whole in (("whole", 1 << 30), ("tiled", 0)):
        set_tiles(monkeypatch, 128, 8, 2, whole=whole)
        data = codec.compress(image, effort=0)  # the coding's tiles alone (the search has its own)
        results[name] = len(data), psnr(image, codec.decompress(data))
    (whole_size, whole_psnr), (tiled_size, tiled_psnr) = results["whole"], results["tiled"]
    assert abs(tiled_psnr - whole_psnr) < 0.05
    assert abs(tiled_size / whole_size - 1) < 0.005


def test_blockwise_puts_each_block_back_in_place():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    assert torch.equal(blockwise(lambda t: t, x, 4, 4), x)
    # each 4x4 block becomes its own mean, upsampled 2x: compared with a loop over the blocks
    per_block = lambda t: t.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 8, 8)  # noqa: E731
    expected = torch.zeros(2, 3, 16, 24)
    for top in range(0, 8, 4):
        for left in range(0, 12, 4):
            expected[..., 2 * top : 2 * top + 8, 2 * left : 2 * left + 8] = per_block(x[..., top : top + 4, left : left + 4])
    assert torch.equal(blockwise(per_block, x, 4, 8), expected)
    assert torch.equal(blockwise(per_block, x, 4, 8, chunk=5), expected)


def test_hyperprior_blocks_in_chunks_code_the_same_file(monkeypatch):
    model = small_model(hyper_block=4)
    x = to_tensor(natural_image(200, 130), model.downsampling)
    with torch.inference_mode():
        whole = model.compress(x)
        monkeypatch.setattr(coding, "HYPER_CHUNK", 2)
        assert model.compress(x) == whole
        assert torch.equal(model.decompress(whole, *x.shape[-2:]), model.coding_estimate(x)["x_hat"].clamp(0, 1))
