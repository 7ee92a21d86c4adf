"""Every architecture: forward pass, and compress/decompress reproducing the quantized forward pass."""

import math

import pytest
import torch

from tests.conftest import natural_image, small_model
from codec.image import to_tensor

CASES = [("factorized", {}), ("scale-hyperprior", {"hyper_attention": "none"}), ("mean-scale-hyperprior", {"hyper_attention": "none"})]
CASES += [(arch, {"hyper_attention": a}) for arch in ("scale-hyperprior", "mean-scale-hyperprior") for a in ("grn", "gc", "sge", "gct")]
CASES += [(arch, {"hyper_attention": "none", "hyper_block": 4}) for arch in ("scale-hyperprior", "mean-scale-hyperprior")]
CASES += [("mean-scale-hyperprior", {"hyper_attention": a, "hyper_block": b}) for a, b in (("gc", 4), ("none", 8))]


def case_id(case):
    arch, config = case
    return f"{arch}-{config.get('hyper_attention', 'none')}" + (f"-block{config['hyper_block']}" if "hyper_block" in config else "")


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


@pytest.mark.parametrize("arch", ["scale-hyperprior", "mean-scale-hyperprior"])
def test_hyperprior_blocks_code_each_block_as_a_crop_of_its_own(arch):
    """With hyper_block 4 every 64-pixel block's scales (and means) are what the hyperprior gives
    for that block alone, as when it trained on 64² crops; one block is the whole-image model."""
    blocked = small_model(arch, hyper_block=4)
    whole = small_model(arch)
    whole.load_state_dict(blocked.state_dict())
    whole.update(force=True)
    x = torch.rand(1, 3, 128, 192)
    with torch.inference_mode():
        y = blocked.analysis(x)
        params = blocked.gaussian_params(blocked.entropy_bottleneck(blocked.hyper_analysis(y))[0])
        for top in (0, 4):
            for left in (0, 4, 8):
                block = y[..., top : top + 4, left : left + 4]
                alone = whole.gaussian_params(whole.entropy_bottleneck(whole.hyper_analysis(block))[0])
                for got, expected in zip(params, alone):
                    if expected is not None:
                        assert torch.equal(got[..., top : top + 4, left : left + 4], expected)
        assert torch.equal(blocked(x[..., :64, :64])["x_hat"], whole(x[..., :64, :64])["x_hat"])


def test_hyper_block_sets_the_image_multiple():
    assert small_model(hyper_block=4).downsampling == 64
    assert small_model(hyper_block=8).downsampling == 128
    with pytest.raises(ValueError, match="multiple of 4"):
        small_model(hyper_block=6)
