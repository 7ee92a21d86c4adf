"""A variable-rate model widened (models/widen.py) starts out computing what it computed."""

import pytest
import torch

from codec.image import to_tensor
from codec.models.architectures import GainedMeanScaleHyperprior
from codec.models.widen import widened
from tests.helpers import natural_image, small_model


def trained_like(seed=0):
    """A small variable-rate model with every parameter moved off its initialization, so that the
    check cannot pass on initial values (zero biases, identity-like GDN) alone."""
    model = small_model("gained-mean-scale-hyperprior", seed=seed, hyper_block=4)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "entropy_bottleneck" not in name:
                parameter.mul_(1 + 0.2 * torch.rand(parameter.shape, generator=generator))
    model.update(force=True)
    return model


@torch.no_grad()
def test_a_widened_model_reconstructs_the_same_image_and_codes_zeros_in_its_new_channels():
    narrow = trained_like()
    wide = widened(narrow, narrow.M + 8)
    wide.update(force=True)
    assert isinstance(wide, GainedMeanScaleHyperprior) and wide.M == narrow.M + 8 and wide.N == narrow.N
    x = to_tensor(natural_image(128, 128), 64)
    for position in (0.0, 3.5, 8.0):
        p = torch.tensor([position])
        # The float forward, the synthesis seeing the rounded latents (z's noise drawn alike).
        outputs = []
        for model in (narrow, wide):
            model.train()
            model.synthesis_sees_rounding = True
            torch.manual_seed(0)
            outputs.append(model(x, p))
            model.eval()
        assert torch.allclose(outputs[0]["x_hat"], outputs[1]["x_hat"], atol=1e-5)
        assert torch.equal(outputs[0]["likelihoods"]["z"], outputs[1]["likelihoods"]["z"])
        # The symbols coding computes: the old channels' as before, the new ones zero.
        y_narrow, y_wide = narrow.g_a(x), wide.g_a(x)
        assert torch.equal(y_wide[:, : narrow.M], y_narrow) and not y_wide[:, narrow.M:].any()
        z = narrow.hyper_analysis(y_narrow)
        assert torch.equal(z, wide.hyper_analysis(y_wide))
        z_hat = narrow.decode_z(narrow.code_z(z), z.shape[-2:])
        (scales_n, means_n), (scales_w, means_w) = narrow.coding_gaussian_params(z_hat), wide.coding_gaussian_params(z_hat)
        assert torch.equal(scales_w[:, : narrow.M], scales_n) and torch.equal(means_w[:, : narrow.M], means_n)
        assert not scales_w[:, narrow.M:].any() and not means_w[:, narrow.M:].any()
        strings_n, strings_w = narrow.compress(x, position), wide.compress(x, position)
        assert strings_w[1] == strings_n[1]  # z
        decoded_n, decoded_w = narrow.decompress(strings_n, 128, 128, position), wide.decompress(strings_w, 128, 128, position)
        assert (decoded_n - decoded_w).abs().max() < 0.5 / 255  # the same 8-bit image


def test_the_new_channels_learn():
    wide = widened(trained_like(), 40)
    wide.train()
    x = to_tensor(natural_image(128, 128), 64)
    out = wide(x, torch.tensor([8.0]))
    out["x_hat"].square().mean().backward()
    assert wide.g_a[-1].weight.grad[32:].abs().sum() > 0  # what produces the new channels of y


def test_only_a_wider_latent_of_a_plain_variable_rate_model():
    with pytest.raises(ValueError, match="can only be widened"):
        widened(trained_like(), 16)
    with pytest.raises(ValueError, match="only a GainedMeanScaleHyperprior"):
        widened(small_model("mean-scale-hyperprior"), 40)


def test_the_command_widens_a_registered_model_and_refuses_to_narrow_it(codec_home, tmp_path):
    from typer.testing import CliRunner

    from codec.cli.main import app
    from codec.training.checkpoint import Checkpoint
    from tests.helpers import image_folder

    data = image_folder(tmp_path / "data", 90, 70)
    common = ["train", "--data", str(data), "--batch-size", "2", "--crop", "64", "--steps", "1"]
    result = CliRunner().invoke(app, common + ["--out", str(tmp_path / "a.ckpt"), "--arch", "gained-mean-scale-hyperprior",
                                               "--N", "8", "--M", "16", "--name", "small-vr"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, common + ["--out", str(tmp_path / "narrow.ckpt"), "--init", "small-vr", "--M", "8"])
    assert result.exit_code == 1 and "can only widen" in result.stderr and result.stderr.count("\n") == 1, result.output
    assert not (tmp_path / "narrow.ckpt").exists()
    result = CliRunner().invoke(app, common + ["--out", str(tmp_path / "wide.ckpt"), "--init", "small-vr", "--M", "24"])
    assert result.exit_code == 0, result.output
    assert Checkpoint.model(Checkpoint.load(tmp_path / "wide.ckpt")).M == 24
