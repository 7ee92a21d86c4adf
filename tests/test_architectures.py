"""Every architecture: forward pass, and compress/decompress reproducing the quantized forward pass."""

import math

import pytest
import torch

from tests.conftest import natural_image, small_model
from codec.image import to_tensor

CASES = [("factorized", {}), ("scale-hyperprior", {"hyper_attention": "none"}), ("mean-scale-hyperprior", {"hyper_attention": "none"})]
CASES += [(arch, {"hyper_attention": a}) for arch in ("scale-hyperprior", "mean-scale-hyperprior") for a in ("grn", "gc", "sge", "gct")]


def case_id(case):
    arch, config = case
    return f"{arch}-{config.get('hyper_attention', 'none')}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_shapes_and_likelihoods(case):
    arch, config = case
    model = small_model(arch, **config).train()
    x = torch.rand(2, 3, 128, 128)
    out = model(x)
    assert out["x_hat"].shape == x.shape
    assert set(out["likelihoods"]) == set(model.latent_names)
    for likelihood in out["likelihoods"].values():
        assert torch.all(likelihood > 0) and torch.all(likelihood <= 1)
    loss = sum(torch.log(l).sum() for l in out["likelihoods"].values()) + out["x_hat"].square().sum()
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.endswith("quantiles"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_decompress_reproduces_quantized_forward_pass(case):
    arch, config = case
    model = small_model(arch, **config)
    x = to_tensor(natural_image(70, 50), model.downsampling)
    with torch.inference_mode():
        expected = model(x)["x_hat"].clamp(0, 1)
        strings = model.compress(x)
        decoded = model.decompress(strings, *x.shape[-2:])
    assert len(strings) == len(model.latent_names)
    assert torch.equal(decoded, expected)


def test_file_size_matches_likelihood_estimate():
    """The rANS output is within a few percent of -log2 of the likelihoods (plus a few bytes a stream)."""
    model = small_model("mean-scale-hyperprior")
    x = to_tensor(natural_image(256, 256))
    with torch.inference_mode():
        estimate_bits = sum(-torch.log2(l).sum().item() for l in model(x)["likelihoods"].values())
        actual_bits = 8 * sum(len(s) for s in model.compress(x))
    assert math.isclose(actual_bits, estimate_bits, rel_tol=0.03, abs_tol=2 * 8 * 8)


def test_unknown_architecture():
    from models.architectures import build_model

    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("cheng2020")


def test_scale_indexes_match_compressai():
    model = small_model("scale-hyperprior")
    table = model.gaussian_conditional.scale_table
    scales = torch.cat([torch.rand(5000) * 300, table, table + 1e-6, torch.tensor([-1.0, 0.0, 1e9])])
    scales = scales.reshape(1, 1, 1, -1)
    assert torch.equal(model.scale_indexes(scales), model.gaussian_conditional.build_indexes(scales))
