"""What training reads: crops of several folders, generated crops, antialiased downscales, and where
the variable-rate crops' rates fall."""

import pytest
import torch

from codec.errors import CodecError
from codec.synthetic import random_image, reference_patterns
from codec.training.config import TrainConfig
from codec.training.sampler import CropSampler, rate_positions
from tests.helpers import image_folder


def test_generated_images_are_rgb_in_range_and_repeatable():
    first = [random_image(64, torch.Generator().manual_seed(seed)) for seed in range(24)]
    again = [random_image(64, torch.Generator().manual_seed(seed)) for seed in range(24)]
    for a, b in zip(first, again):
        assert a.shape == (3, 64, 64) and a.dtype == torch.float32
        assert 0 <= a.min() and a.max() <= 1
        assert torch.equal(a, b)
    assert len({tuple(a.flatten()[:50].tolist()) for a in first}) == len(first)


def test_reference_patterns_hold_flat_greys_and_stripes():
    patterns = reference_patterns(64)
    assert patterns["flat grey 128"].sub(128 / 255).abs().max() < 1e-6
    stripes = patterns["grating 2 px"]
    assert torch.equal(stripes[:, :, 1::2], torch.zeros_like(stripes[:, :, 1::2]))
    assert torch.equal(stripes[:, :, 0::2], torch.ones_like(stripes[:, :, 0::2]))
    assert all(p.shape == (3, 64, 64) for p in patterns.values())


def test_sampler_reads_several_folders(tmp_path):
    a, b = image_folder(tmp_path / "a", 90, 70), image_folder(tmp_path / "b", 80, 80)
    both = CropSampler(f"{a}:{b}", 64)
    assert len(both.images) == len(CropSampler(str(a), 64).images) + len(CropSampler(str(b), 64).images)


def test_sampler_mixes_in_generated_crops_at_its_share(dataset):
    sampler = CropSampler(str(dataset), 64, synthetic=0.5)
    batch = sampler.batch(64, torch.Generator().manual_seed(0))
    # Generated crops: those not found among the data's possible crops; the data images are noise-free
    # renders whose crops are never exactly flat, while a flat generated crop is.
    flat = sum(bool((crop == crop[:, :1, :1]).all()) for crop in batch)
    assert batch.shape == (64, 3, 64, 64) and 0 <= batch.min() and batch.max() <= 1
    assert 2 <= flat <= 16  # about 64 * 0.5 / len(KINDS) ≈ 5
    assert torch.equal(CropSampler(str(dataset), 64).batch(4, torch.Generator().manual_seed(1)),
                       CropSampler(str(dataset), 64, synthetic=0.0).batch(4, torch.Generator().manual_seed(1)))


def test_downscaled_crops_are_smoother(tmp_path):
    noisy = image_folder(tmp_path / "data", 128, 128)
    plain = CropSampler(str(noisy), 64).batch(32, torch.Generator().manual_seed(0))
    shrunk = CropSampler(str(noisy), 64, downscale=1.0).batch(32, torch.Generator().manual_seed(0))
    assert shrunk.shape == plain.shape
    roughness = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    assert roughness(shrunk) < roughness(plain)


def test_rate_bias_moves_the_crops_rates_toward_the_high_anchors():
    uniform = rate_positions(4096, 9, 0.0, torch.Generator().manual_seed(0)) / 8
    biased = rate_positions(4096, 9, 1.0, torch.Generator().manual_seed(0)) / 8
    assert abs(float(uniform.mean()) - 0.5) < 0.02
    assert abs(float(biased.mean()) - 2 / 3) < 0.02  # density 2t on [0, 1]
    assert abs(float((biased < 0.5).float().mean()) - 0.25) < 0.02
    assert 0 <= float(biased.min()) and float(biased.max()) <= 1


@pytest.mark.parametrize("change, message", [
    ({"rate_bias": -1}, "--rate-bias must be from 0 to 10"),
    ({"rate_bias": 11}, "--rate-bias must be from 0 to 10"),
    ({"synthetic": 1.5}, "--synthetic must be a share from 0 to 1"),
    ({"downscale": -0.1}, "--downscale must be a share from 0 to 1"),
    ({"rate_bias": 1, "lmbda": 0.01, "arch": "mean-scale-hyperprior"}, "--rate-bias is for a variable-rate"),
])
def test_out_of_range_recipes_are_refused(change, message):
    recipe = {"data": "", "lmbda": None, "arch": "gained-mean-scale-hyperprior", **change}
    with pytest.raises(CodecError, match=message):
        TrainConfig(**recipe)


def test_the_command_takes_several_folders_and_refuses_bad_shares(codec_home, tmp_path):
    from typer.testing import CliRunner

    from codec.cli.main import app
    from codec.training.checkpoint import Checkpoint

    a, b = image_folder(tmp_path / "a", 90, 70), image_folder(tmp_path / "b", 70, 90)
    out = tmp_path / "run.ckpt"
    common = ["train", "--data", str(a), "--data", str(b), "--out", str(out), "--arch", "gained-mean-scale-hyperprior",
              "--N", "8", "--M", "16", "--batch-size", "2", "--crop", "64", "--steps", "1"]
    for option, value, message in (("--rate-bias", "11", "--rate-bias must be from 0 to 10"),
                                   ("--synthetic", "2", "--synthetic must be a share from 0 to 1")):
        result = CliRunner().invoke(app, common + [option, value])
        assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0 and message in result.stderr, result.output
        assert not out.exists()
    result = CliRunner().invoke(app, common + ["--rate-bias", "1", "--synthetic", "0.5", "--downscale", "0.5"])
    assert result.exit_code == 0, result.output
    recipe = Checkpoint.config(Checkpoint.load(out))
    assert recipe.data.split(":") == [str(a), str(b)] and (recipe.rate_bias, recipe.synthetic, recipe.downscale) == (1, 0.5, 0.5)
