"""Training: the loss, the schedule, and checkpoints that resume exactly and are never half-written."""

import math

import pytest
import torch

from codec.train import Checkpoint, TrainConfig, learning_rate, rd_loss, train


def config(data, steps):
    return TrainConfig(data=str(data), lmbda=0.01, N=8, M=16, steps=steps, batch_size=2, crop=64, warmup=2)


def test_rd_loss_is_lambda_mse_plus_bpp():
    x = torch.full((1, 3, 4, 4), 0.5)
    output = {"x_hat": x + 0.1, "likelihoods": {"y": torch.full((1, 2, 1, 1), 0.5)}}
    loss, bpp, mse = rd_loss(output, x, lmbda=0.01, metric="mse")
    assert math.isclose(bpp.item(), 2 / 16)
    assert math.isclose(mse.item(), 0.01, rel_tol=1e-5)
    assert math.isclose(loss.item(), 0.01 * 255**2 * 0.01 + 2 / 16, rel_tol=1e-5)


def test_learning_rate_schedule():
    c = TrainConfig(data="", lmbda=0.01, steps=1000, lr=1e-3, warmup=100, decay_fraction=0.2, final_lr_ratio=0.1)
    assert learning_rate(c, 0) == pytest.approx(1e-5)
    assert learning_rate(c, 99) == pytest.approx(1e-3)
    assert learning_rate(c, 500) == pytest.approx(1e-3)
    assert learning_rate(c, 900) == pytest.approx(0.55e-3)
    assert learning_rate(c, 1000) == pytest.approx(1e-4)


def test_resumed_run_equals_uninterrupted_run(dataset, tmp_path):
    straight = train(config(dataset, 4), tmp_path / "straight.ckpt", report=lambda *a: None)
    interrupted = tmp_path / "interrupted.ckpt"
    train(config(dataset, 2), interrupted, report=lambda *a: None)
    train(config(dataset, 4), interrupted, report=lambda *a: None, notice=lambda m: None)
    a, b = Checkpoint.load(straight), Checkpoint.load(interrupted)
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_checkpoint_is_never_half_written(dataset, tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    train(config(dataset, 1), path, report=lambda *a: None)
    before = path.read_bytes()

    def failing_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        train(config(dataset, 2), path, report=lambda *a: None, notice=lambda m: None)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_training_survives_sigkill(dataset, tmp_path):
    """Kill -9 a run that checkpoints every step: the checkpoint loads, and the run resumes from it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "killed.ckpt"
    script = (
        "from codec.train import TrainConfig, train\n"
        f"config = TrainConfig(data={str(dataset)!r}, lmbda=0.01, N=8, M=16, steps=10000, batch_size=2, crop=64)\n"
        f"train(config, {str(path)!r}, checkpoint_seconds=0, report=lambda *a: None)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not path.exists() or Checkpoint.load(path)["step"] < 3):
            time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    state = Checkpoint.load(path)
    assert state["step"] >= 3
    train(config(dataset, state["step"] + 1), path, report=lambda *a: None, notice=lambda m: None)
    assert Checkpoint.load(path)["step"] == state["step"] + 1
