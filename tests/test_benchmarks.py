"""Every benchmark's entry point runs: on tiny generated inputs, or where a run cannot be tiny (worker
processes, whole `codec` processes) with --dry-run, its argument parsing, model loading and one
coding in this process. The benchmarks run as scripts (runpy); no test imports them."""

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from codec.models import coding
from tests.helpers import natural_image

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch, capsys):
    """run(name, *args): the benchmark's main as `python benchmarks/NAME.py ARGS` runs it; its
    standard output. What a benchmark sets for its process (threads, subnormals, the benchmarks
    that it imports as modules) is put back afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    threads, modules = torch.get_num_threads(), set(sys.modules)

    def run(name: str, *args) -> str:
        monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / f"{name}.py"), *map(str, args)])
        try:
            runpy.run_path(str(BENCHMARKS / f"{name}.py"), run_name="__main__")
        except SystemExit as exit:
            assert not exit.code, capsys.readouterr()
        return capsys.readouterr().out

    yield run
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)
    for name in set(sys.modules) - modules:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(BENCHMARKS)):
            del sys.modules[name]


@pytest.fixture
def images(tmp_path):
    """A folder of one small generated image."""
    folder = tmp_path / "images"
    folder.mkdir()
    natural_image(64, 48).save(folder / "0.png")
    return folder


def test_every_benchmark_has_a_smoke_test():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {path.stem for path in BENCHMARKS.glob("*.py")} <= tested


def test_speed(bench, images):
    dtype = coding.DTYPE
    output = bench("speed", images, "--dry-run")
    assert [line.split(":")[0] for line in output.splitlines()] == ["ours", "ours-float32", "compressai"]
    assert coding.DTYPE == dtype  # ours-float32's precision is put back


def test_compute_bound(bench, images):
    assert "our stages" in bench("compute_bound", images, "--dry-run", "--threads", 1)


def test_memory(bench, images):
    assert "compress" in bench("memory", images, "--sizes", "128x96", "--dry-run")


def test_effort(bench, images):
    assert "effort 0  q30" in bench("effort", images, "--efforts", "0", "--qualities", "30", "--dry-run")


def test_context_cost(bench, images):
    assert "| compress |" in bench("context_cost", images, "--repeats", 1, "--count", 1)


def test_crop_generalization(bench, images, tiny_model):
    assert "64² crops" in bench("crop_generalization", "tiny", images, "--images", 1, "--sizes", 64)


def test_cross_machine(bench, tmp_path):
    bench("cross_machine", "encode", tmp_path / "files", "--images", "smooth", "--qualities", 50)
    assert "1/1 files decode to the same latents" in bench("cross_machine", "check", tmp_path / "files")


def test_determinism(bench, images, tiny_model):
    assert "0  exact mismatches" in bench("determinism", images, "--models", "tiny")


def test_fuzz(bench):
    assert "inputs" in bench("fuzz", "--count", 3)


def test_half_precision(bench, images, dataset, tmp_path):
    from codec.train import train
    from codec.training.config import TrainConfig

    config = TrainConfig(data=str(dataset), lmbda=0.01, N=8, M=16, steps=1, batch_size=1, crop=64, warmup=1)
    checkpoint = train(config, tmp_path / "run.ckpt", report=lambda *a: None, notice=lambda m: None)
    assert "half - float32" in bench("half_precision", checkpoint, images)


# Budgets of 1e-6 minutes: every contender stops after its first step, however fast the machine.
TINY_RECIPE = ("--set", "N=8", "--set", "M=16", "--set", "batch_size=1", "--set", "crop=64")


def test_hyperprior_blocks(bench, dataset, images):
    output = bench("hyperprior_blocks", dataset, images, "--blocks", "none,gct", "--minutes", 1e-6, *TINY_RECIPE)
    assert "| none | 1 |" in output and "| gct | 1 |" in output


def test_ladders(bench):
    assert "BD-rate PSNR of vr3 against vr2" in bench("ladders", "vr2", "vr3")


def test_learning_speed(bench, dataset, images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    probe = [{"minutes": 1.0, "steps": 10, "val_bpp": 0.5, "val_psnr": 20.0}]
    (out / "probe.json").write_text(json.dumps({"curve": probe}))
    output = bench("learning_speed", dataset, images, "--reuse-probe", "--ours-minutes", 1e-6, "--out", out, *TINY_RECIPE)
    assert "probe after 1.0 min" in output and (out / "ours.json").is_file()


def test_recipes(bench, dataset, images, tiny_model):
    output = bench("recipes", dataset, images, "--init", "tiny", "--variant", "small:batch_size=1", "--minutes", 1e-6)
    assert "small" in output.splitlines()[-1]


def test_side_information(bench, images):
    assert "| 100 |" in bench("side_information", images, "--qualities", "0,100")


def test_recorded_bytes(bench, images, tmp_path, monkeypatch):
    monkeypatch.setattr(coding, "DTYPE", coding.DTYPE)  # --float32 sets it for the process
    record, options = tmp_path / "record.json", ("--qualities", "0,100", "--float32")
    bench("recorded_bytes", images, "--record", record, *options)
    assert "2 of 2 files" in bench("recorded_bytes", images, "--check", record, *options)
    saved = json.loads(record.read_text())
    saved["digests"]["float32"]["0.png@100"][1] = "0" * 64
    record.write_text(json.dumps(saved))
    with pytest.raises(AssertionError, match="0.png@100: pixels differ"):
        bench("recorded_bytes", images, "--check", record, *options)


def test_tiling(bench, tmp_path):
    natural_image(144, 80).save(tmp_path / "image.png")
    assert "decodings differ" in bench("tiling", tmp_path / "image.png", "--figure", tmp_path / "figure.png")
    assert (tmp_path / "figure.png").is_file()


def test_train_speed(bench, dataset):
    output = bench("train_speed", dataset, "--steps", 1, "--batch-size", 1, "--crop", 64, "--N", 8, "--M", 16)
    assert "throughput, ours float32 / CompressAI recipe" in output


def test_startup(bench):
    assert "| help |" in bench("startup", "--commands", "help", "--runs", 1)


def test_ceiling(bench, images):
    assert "0.png at anchor 4" in bench("ceiling", images, "--anchors", "4", "--dry-run")
