"""Every architecture: forward pass, and compress/decompress reproducing the forward pass in the coding forms."""

import math

import pytest
import torch
from torch import nn

from tests.helpers import CODING_DTYPES, checkerboard_model, natural_image, small_model
from codec.image import to_tensor
from codec.models import coding
from codec.models.architectures import ARCHITECTURES, is_variable_rate
from codec.models.strided import depth_to_space_conv, space_to_depth_conv

CASES = [("factorized", {}), ("scale-hyperprior", {"hyper_attention": "none"}), ("mean-scale-hyperprior", {"hyper_attention": "none"})]
CASES += [(arch, {"hyper_attention": a}) for arch in ("scale-hyperprior", "mean-scale-hyperprior") for a in ("grn", "gc", "sge", "gct")]
CASES += [(arch, {"hyper_attention": "none", "hyper_block": 4}) for arch in ("scale-hyperprior", "mean-scale-hyperprior")]
CASES += [("mean-scale-hyperprior", {"hyper_attention": a, "hyper_block": b}) for a, b in (("gc", 4), ("none", 8))]
CASES += [("mean-scale-hyperprior", {"hyper_attention": "sge", "hyper_attention_in": "h_a", "hyper_block": 4})]


def case_id(case):
    arch, config = case
    return (f"{arch}-{config.get('hyper_attention', 'none')}" + (f"-in-{config['hyper_attention_in']}" if "hyper_attention_in" in config else "")
            + (f"-block{config['hyper_block']}" if "hyper_block" in config else ""))


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
        expected = model.coding_estimate(x)["x_hat"].clamp(0, 1)
        strings = model.compress(x)
        decoded = model.decompress(strings, *x.shape[-2:])
    assert len(strings) == len(model.latent_names)
    assert torch.equal(decoded, expected)


def test_blocks_in_h_a_alone_leave_h_s_plain_and_decoding_exact():
    """With hyper_attention_in "h_a" only the encoder runs the block: h_s is the plain transform that
    models/exact.py evaluates exactly."""
    model = small_model("gained-mean-scale-hyperprior", hyper_attention="gc", hyper_attention_in="h_a", hyper_block=4)
    assert any(not isinstance(m, nn.Identity) and hasattr(m, "make_neutral") for m in model.h_a)
    assert not any(hasattr(m, "make_neutral") for m in model.h_s)
    with pytest.raises(ValueError, match="hyper_attention_in must be one of both, h_a"):
        small_model("mean-scale-hyperprior", hyper_attention="gc", hyper_attention_in="h_s")


def test_file_size_matches_likelihood_estimate():
    """The rANS output is within a few percent of -log2 of the likelihoods (plus a few bytes a stream)."""
    model = small_model("mean-scale-hyperprior")
    x = to_tensor(natural_image(256, 256))
    with torch.inference_mode():
        estimate_bits = sum(-torch.log2(l).sum().item() for l in model.coding_estimate(x)["likelihoods"].values())
        actual_bits = 8 * sum(len(s) for s in model.compress(x))
    assert math.isclose(actual_bits, estimate_bits, rel_tol=0.03, abs_tol=2 * 8 * 8)


def test_unknown_architecture():
    from codec.models.architectures import build_model

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
        y = blocked.coding_analysis(x)
        params = blocked.coding_gaussian_params(blocked.entropy_bottleneck(blocked.hyper_analysis(y))[0])
        for top in (0, 4):
            for left in (0, 4, 8):
                block = y[..., top : top + 4, left : left + 4]
                alone = whole.coding_gaussian_params(whole.entropy_bottleneck(whole.hyper_analysis(block))[0])
                for got, expected in zip(params, alone):
                    if expected is not None:
                        assert torch.equal(got[..., top : top + 4, left : left + 4], expected)
        assert torch.equal(blocked.coding_estimate(x[..., :64, :64])["x_hat"], whole.coding_estimate(x[..., :64, :64])["x_hat"])


def test_hyper_block_sets_the_image_multiple():
    assert small_model(hyper_block=4).downsampling == 64
    assert small_model(hyper_block=8).downsampling == 128
    with pytest.raises(ValueError, match="multiple of 4"):
        small_model(hyper_block=6)


@pytest.mark.parametrize("kernel", [3, 5])
def test_faster_forms_of_the_strided_layers_compute_the_same_sums(kernel):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, kernel, stride=2, padding=kernel // 2)
    deconv = nn.ConvTranspose2d(8, 3, kernel, stride=2, padding=kernel // 2, output_padding=1)
    x, h = torch.randn(2, 3, 16, 24), torch.randn(2, 8, 8, 12)
    with torch.no_grad():
        assert torch.allclose(space_to_depth_conv(conv, x), conv(x), atol=1e-5)
        assert torch.allclose(depth_to_space_conv(deconv, h), deconv(h), atol=1e-5)


@pytest.mark.parametrize("dtype", CODING_DTYPES)
def test_coding_runs_the_transforms_of_training(monkeypatch, dtype):
    """Coding's form of g_a and g_s (channels-last, faster first and last layers, bfloat16 where
    chosen) computes the transforms: to float32's rounding, or to about 1 % in bfloat16."""
    model = small_model(N=32, M=48)
    monkeypatch.setattr(coding, "DTYPE", dtype)
    x = to_tensor(natural_image(192, 128))
    tolerance = 1e-5 if dtype == torch.float32 else 0.02
    with torch.inference_mode():
        y = model.g_a(x)
        y_hat = torch.round(y * 20)  # latents as large as trained models' (a bfloat16 y would be off by 1/8)
        for coded, plain in ((model.coding_analysis(x), y), (model.coding_synthesis(y_hat), model.g_s(y_hat))):
            assert torch.allclose(coded, plain, atol=tolerance * plain.abs().max().item())
        assert model.coding_analysis(x).dtype == model.coding_synthesis(y_hat).dtype == torch.float32


def test_symbols_code_to_compressais_streams():
    """y's symbols go to the rANS coder as int32 buffers: the very stream CompressAI's own compress
    writes from Python lists, and back."""
    model = small_model()
    x = to_tensor(natural_image(128, 128))
    with torch.inference_mode():
        y = model.coding_analysis(x)
        scales, means = model.coding_gaussian_params(torch.round(model.hyper_analysis(y)))
        indexes = model.scale_indexes(scales)
        conditional = model.gaussian_conditional
        symbols = conditional.quantize(y, "symbols", means)
        string = coding.encode_symbols(conditional, symbols, indexes)
        assert string == conditional.compress(y, indexes, means=means)[0]
        assert torch.equal(coding.decode_symbols(conditional, string, indexes), symbols)


# --- the checkerboard context ----------------------------------------------------------------------

def test_anchor_mask_is_a_checkerboard():
    from codec.models.architectures import anchor_mask

    assert anchor_mask(2, 3).tolist() == [[True, False, True], [False, True, False]]


def test_checkerboard_decodes_what_its_forward_pass_gives_in_three_streams():
    """Anchors, then the rest from the anchors' context, then z; the decoder's two passes rebuild
    the encoder's scales, so the image is the quantized forward pass's (gains from the float64
    table in coding, from the float32 parameters in the forward pass: a rare symbol may differ)."""
    model = checkerboard_model()
    x = to_tensor(natural_image(120, 70), model.downsampling)
    with torch.inference_mode():
        expected = model.coding_estimate(x, torch.tensor([4.0]))["x_hat"].clamp(0, 1)
        strings = model.compress(x, 4.0)
        decoded = model.decompress(strings, *x.shape[-2:], 4.0)
    assert len(strings) == len(model.latent_names) == 3 and all(strings)
    difference = (decoded - expected).abs()
    assert difference.mean() < 1e-3 and difference.max() < 0.05


def test_checkerboard_context_changes_the_second_pass_only():
    """With its context at zero the model codes as the gained hyperprior of the same weights does:
    the same y symbols, split into anchors and the rest; with a context, the anchors' stream stays
    and the rest's changes."""
    from codec.models.architectures import GainedMeanScaleHyperprior

    neutral, trained = checkerboard_model(0.0), checkerboard_model()
    plain = small_model("gained-mean-scale-hyperprior", hyper_block=4)
    plain.load_state_dict({k: v for k, v in neutral.state_dict().items() if not k.startswith(neutral.neutral_extensions)})
    x = to_tensor(natural_image(64, 64), neutral.downsampling)
    with torch.inference_mode():
        neutral_strings, trained_strings = neutral.compress(x, 2.0), trained.compress(x, 2.0)
        torch.testing.assert_close(neutral.coding_estimate(x, torch.tensor([2.0]))["x_hat"],
                                   plain.coding_estimate(x, torch.tensor([2.0]))["x_hat"], rtol=0, atol=0)
        assert isinstance(plain, GainedMeanScaleHyperprior) and plain.compress(x, 2.0)[1] == neutral_strings[2]
    assert neutral_strings[0] == trained_strings[0] and neutral_strings[2] == trained_strings[2]
    assert neutral_strings[1] != trained_strings[1]


def test_checkerboard_context_in_tiles_gives_the_whole_image_values(monkeypatch):
    """Its exact sums make the tiled correction the very same numbers as one piece, and those are
    the float transforms' of training to within the grid."""
    from codec.models.architectures import anchor_mask

    model = checkerboard_model()
    generator = torch.Generator().manual_seed(0)
    anchors = anchor_mask(40, 70)
    anchors_hat, hyper = torch.randn(1, 32, 40, 70, generator=generator) * anchors, torch.randn(1, 64, 40, 70, generator=generator)
    whole = model.coding_contextual_params(hyper, anchors_hat, anchors)
    monkeypatch.setattr(coding, "WHOLE_PIXELS", 0)
    assert torch.equal(model.coding_contextual_params(hyper, anchors_hat, anchors), whole)
    assert torch.equal(whole[..., anchors], hyper[..., anchors]) and not torch.equal(whole, hyper)
    with torch.no_grad():
        float_params = model.contextual_params(hyper, anchors_hat, anchors)
    torch.testing.assert_close(whole, float_params, rtol=0, atol=2e-3)


def test_the_context_at_some_positions_from_some_taps_is_the_whole_convolution_there():
    """The exact context, computed at the latents that are not anchors from the taps that are
    weights, gives exact_forward's values of the full 5x5 convolution there."""
    from codec.models.architectures import CheckerboardContext, anchor_mask
    from codec.models.exact import exact_conv_at, exact_forward

    torch.manual_seed(0)
    context = CheckerboardContext(6, 10)
    full = nn.Conv2d(6, 10, 5, padding=2)
    with torch.no_grad():
        full.weight.copy_(context.kernel())
        full.bias.copy_(context.bias)
    anchors = anchor_mask(9, 11)
    x = torch.randn(2, 6, 9, 11) * anchors
    positions = (~anchors).flatten().nonzero().squeeze(1)
    expected = exact_forward(nn.Sequential(full), x).flatten(2)[..., positions]
    assert torch.equal(exact_conv_at(context, x, positions), expected)
    torch.testing.assert_close(context(x), full(x))


def test_exact_correction_makes_its_tensors_on_its_inputs_device():
    """Every tensor exact_correction makes lives on its input's device (a CUDA validation must not
    mix devices): with factory functions defaulting to the meta device, a CPU input still gives a
    CPU result, the same numbers."""
    model = checkerboard_model()
    h = torch.randn(1, 3 * model.M, 6, 8, generator=torch.Generator().manual_seed(0))
    expected = model.exact_correction(h)
    with torch.device("meta"):
        correction = model.exact_correction(h)
    assert correction.device == h.device and torch.equal(correction, expected)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_model_codes_through_one_signature(arch):
    """compress(x, position) and decompress(strings, height, width, position): a one-rate model
    refuses a rate position, a variable-rate one requires it."""
    model = small_model(arch)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        if is_variable_rate(arch):
            strings = model.compress(x, 1.0)
            assert model.decompress(strings, 64, 64, 1.0).shape == x.shape
            refused = (lambda: model.compress(x), lambda: model.decompress(strings, 64, 64))
        else:
            strings = model.compress(x)
            assert model.decompress(strings, 64, 64).shape == x.shape
            refused = (lambda: model.compress(x, 1.0), lambda: model.decompress(strings, 64, 64, 1.0))
        for call in refused:
            with pytest.raises(ValueError, match="rate position"):
                call()


def test_forward_is_the_float_function_whatever_the_mode_and_the_cpu(monkeypatch):
    """In eval mode forward rounds instead of adding noise, and that is all: coding's choices
    (its precision, its tiles) do not reach it."""
    model = checkerboard_model()
    x = to_tensor(natural_image(64, 64), model.downsampling)
    position = torch.tensor([2.0])
    with torch.no_grad():
        expected = model(x, position)
        monkeypatch.setattr(coding, "DTYPE", torch.bfloat16)
        monkeypatch.setattr(coding, "WHOLE_PIXELS", 0)
        output = model(x, position)
        assert not torch.equal(model.coding_estimate(x, position)["x_hat"], expected["x_hat"])
    assert torch.equal(output["x_hat"], expected["x_hat"])
    assert all(torch.equal(output["likelihoods"][k], expected["likelihoods"][k]) for k in expected["likelihoods"])
