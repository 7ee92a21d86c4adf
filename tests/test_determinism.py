"""Decoding gives the same image whatever the thread count or the summation order of h_s."""

import numpy as np
import pytest
import torch

import codec
import codec.models.exact
from codec.summation import split_channel_sums
from codec.models.exact import exact_forward
from codec.registry import load_model
from tests.helpers import natural_image, small_model


@pytest.fixture
def threads():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


def decoded_array(data):
    return np.asarray(codec.decompress(data))


# A one-rate model, and the variable-rate one at a fractional quality (its gains interpolated).
MODELS = pytest.mark.parametrize("name, quality", [("tiny", None), ("tinyvr", 37.51)])


@pytest.fixture
def coded(request, tiny_model, tiny_variable_model):
    """A file of a 150x100 image, coded with the model of the test's `name` and `quality`, and its card."""
    name, quality = request.getfixturevalue("name"), request.getfixturevalue("quality")
    card = tiny_model if name == "tiny" else tiny_variable_model
    return codec.compress(natural_image(150, 100), quality=quality, model=name), card


@MODELS
def test_same_image_with_one_and_two_threads(coded, threads, name, quality):
    data, _ = coded
    torch.set_num_threads(2)
    two = decoded_array(data)
    torch.set_num_threads(1)
    assert np.array_equal(decoded_array(data), two)


@MODELS
def test_same_latents_with_one_and_two_threads(coded, threads, monkeypatch, name, quality):
    data, card = coded
    model = load_model(card)
    latents = []

    def capture(y_hat):
        latents.append(y_hat.clone())
        return torch.zeros(1, 3, 16 * y_hat.shape[-2], 16 * y_hat.shape[-1])

    monkeypatch.setattr(model, "coding_synthesis", capture)
    for count in (2, 1):
        torch.set_num_threads(count)
        codec.decompress(data)
    assert torch.equal(latents[0], latents[1])


@MODELS
def test_same_image_when_the_hyper_path_sums_in_another_order(coded, monkeypatch, name, quality):
    data, card = coded
    reference = decoded_array(data)
    model = load_model(card)
    exact = model.coding_hyper_synthesis

    def other_route(z_hat):
        with split_channel_sums():
            return exact(z_hat)

    monkeypatch.setattr(model, "coding_hyper_synthesis", other_route)
    assert np.array_equal(decoded_array(data), reference)


@pytest.mark.parametrize("arch", ["scale-hyperprior", "mean-scale-hyperprior"])
def test_exact_path_is_invariant_where_the_float_path_is_not(arch):
    model = small_model(arch, N=64, M=96)
    z = torch.round(torch.randn(2, 64, 6, 9, generator=torch.Generator().manual_seed(0)) * 4)
    with torch.no_grad():
        exact, plain = exact_forward(model.h_s, z), model.h_s(z)
        with split_channel_sums():
            exact_split, plain_split = exact_forward(model.h_s, z), model.h_s(z)
        in_float64 = exact_forward(model.h_s.double(), z.double())
    assert not torch.equal(plain, plain_split)  # the perturbation does perturb float arithmetic
    a, b = torch.randn(64, 300, dtype=torch.float64), torch.randn(300, 50, dtype=torch.float64)
    with split_channel_sums():
        assert not torch.equal(codec.models.exact.matmul(a, b), a @ b)  # ... and the exact path's products
    assert torch.equal(exact, exact_split)
    assert torch.equal(exact, in_float64)  # float32 or float64 weights: the same grid
    assert torch.allclose(exact, plain, atol=0.05)


def test_hostile_hyper_latents_stay_finite_and_exact():
    model = small_model("mean-scale-hyperprior")
    z = torch.full((1, 16, 2, 2), 1e9)
    with torch.no_grad():
        out = exact_forward(model.h_s, z)
        with split_channel_sums():
            assert torch.equal(exact_forward(model.h_s, z), out)
    assert torch.isfinite(out).all()


def test_exact_path_follows_changed_weights():
    """The exact path keeps its grid weights between calls; a change of the weights (a training
    step, a load) must reach it."""
    model = small_model("mean-scale-hyperprior")
    z = torch.round(torch.randn(1, 16, 3, 3, generator=torch.Generator().manual_seed(2)) * 4)
    with torch.no_grad():
        before = exact_forward(model.h_s, z)
        assert torch.equal(exact_forward(model.h_s, z), before)
        model.h_s[0].weight.mul_(2)
        assert torch.allclose(exact_forward(model.h_s, z), model.h_s(z), atol=0.05)
        assert not torch.equal(exact_forward(model.h_s, z), before)
