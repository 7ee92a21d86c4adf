"""The training recipe is written once, in TrainConfig: its fields are `codec train`'s options and
the manifest's command line, and their checks refuse the same values from Python as from the command."""

import dataclasses
import os
import re
import shlex

import pytest

from codec.cli.main import app, recipe_values
from codec.errors import CodecError
from codec.export import training_command
from codec.training.config import FIELDS, TrainConfig, option_name
from tests.helpers import assert_one_line_error, run

# Every field away from its default (a one-rate and a variable-rate recipe, as λ goes with one and
# --rate-bias with the other), within what the checks allow.
CHANGED = dict(data=os.pathsep.join(["a", "b"]), N=16, M=32, hyper_attention="sge", hyper_attention_in="h_a", hyper_block=8,
               metric="ms-ssim", steps=7, batch_size=3, crop=256, lr=2e-4, warmup=5, decay_fraction=0.25,
               final_lr_ratio=0.1, aux_lr=2e-3, clip=0.5, ema=0.9, ste=False, seed=3, threads=1, init="vr3", minutes=2.5,
               device="cpu", precision="bfloat16", synthetic=0.1, downscale=0.2)
RECIPES = [TrainConfig(**CHANGED, lmbda=0.02, arch="scale-hyperprior"),
           TrainConfig(**CHANGED, lmbda=None, arch="gained-checkerboard-hyperprior", rate_bias=1.5)]


def train_command():
    import typer.main

    return typer.main.get_command(app).commands["train"]


def test_every_recipe_field_is_an_option_of_codec_train():
    options = {parameter.name: parameter for parameter in train_command().params}
    help_text = run("train", "--help").stdout.split()
    for name, field in FIELDS.items():
        option = options[name]
        assert option_name(field) in option.opts and option.help == field.metadata["help"], name
        assert option.default == (None if field.default is dataclasses.MISSING else field.default), name
        assert option_name(field) in help_text, name


def test_the_manifest_command_runs_the_recipe_and_names_every_field():
    """Each recipe's command line, parsed as `codec train` parses it, gives the recipe back; between
    the two recipes every field's option appears."""
    named = set()
    for recipe in RECIPES:
        words = shlex.split(training_command(recipe))
        assert words[:2] == ["codec", "train"]
        parsed = train_command().make_context("train", words[2:] + ["--out", "run.ckpt"]).params
        assert TrainConfig(**recipe_values(parsed)) == recipe
        named |= {name for name, field in FIELDS.items()
                  if option_name(field) in words or (field.type == "bool" and f"--no-{option_name(field)[2:]}" in words)}
    assert named == set(FIELDS)


def test_a_default_recipe_writes_the_command_of_the_earlier_manifests():
    """The options added since the first manifests stay out of the command at their defaults."""
    recipe = TrainConfig(data="train", lmbda=None, arch="gained-mean-scale-hyperprior", steps=21000, crop=64, lr=5e-4, init="vr1")
    assert training_command(recipe) == (
        "codec train --data train --arch gained-mean-scale-hyperprior --N 128 --M 192 --hyper-attention none --hyper-block 4 "
        "--metric mse --steps 21000 --batch-size 8 --crop 64 --lr 0.0005 --warmup 50 --decay-fraction 0.5 --ema 0.99 --ste "
        "--init vr1")


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "--steps must be at least 1 (got 0)"),
    ({"lr": -1}, "--lr must be positive (got -1)"),
    ({"arch": "nope"}, "unknown architecture 'nope' (choose from factorized, "),
    ({"metric": "psnr"}, "unknown metric 'psnr' (mse or ms-ssim)"),
    ({"ema": 1.0}, "--ema must be in [0, 1) (got 1.0)"),
    ({"arch": "gained-mean-scale-hyperprior"}, "gained-mean-scale-hyperprior trains every rate at once (its anchors' λs): give no --lmbda"),
    ({"crop": 96}, "--crop must be a multiple of 64 for mean-scale-hyperprior (got 96)"),
    ({"hyper_block": 6}, "--hyper-block 6: hyper_block must be 0 or a positive multiple of 4"),
    ({"synthetic": 2}, "--synthetic must be a share from 0 to 1 (got 2)"),
    ({"device": "tpu"}, "unknown --device 'tpu' (choose from auto, cpu, cuda)"),
])
def test_a_bad_recipe_is_refused_from_python_as_by_the_command(dataset, tmp_path, change, message):
    recipe = {"data": str(dataset), "lmbda": 0.01, "N": 8, "M": 16, "crop": 64, **change}
    with pytest.raises(CodecError, match=re.escape(message)):
        TrainConfig(**recipe)
    out = tmp_path / "run.ckpt"
    options = [word for name, value in recipe.items() for word in (option_name(FIELDS[name]), value)]
    assert_one_line_error(run("train", *options, "--out", out), message)
    assert not out.exists()
