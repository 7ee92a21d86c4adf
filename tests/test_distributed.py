"""`codec train` under torchrun: two CPU processes (gloo) stay in step, and rank 0 alone writes."""

import json
import math
import os
import subprocess
import sys

import torch

from codec.training.checkpoint import Checkpoint
from codec.registry import get_card

# Runs the `codec train` command and then saves this rank's final weights, which only the test needs:
# rank 0's checkpoint alone cannot show that the other rank ended with the same model. With KEEP_AT
# set, it checkpoints every step and keeps a copy of step 2's checkpoint there: an interrupted run,
# taken from the straight one without a launch of its own.
LAUNCHER = """
import functools, os, shutil, sys
import torch
from torch.nn.parallel import DistributedDataParallel
import codec.train
from codec.cli.main import app
from codec.training.checkpoint import Checkpoint

if os.environ.get("KEEP_AT"):
    save = Checkpoint.save

    def keeping(path, trainer_state, config, step, *rest):
        save(path, trainer_state, config, step, *rest)
        if step == 2:
            shutil.copy(path, os.environ["KEEP_AT"])

    Checkpoint.save = staticmethod(keeping)
    codec.train.train = functools.partial(codec.train.train, checkpoint_seconds=0)

models = []

def recording(module, **options):
    models.append(module)
    return DistributedDataParallel(module, **options)

codec.train.DistributedDataParallel = recording
try:
    app(sys.argv[1:])
except SystemExit as exit:
    if not exit.code:
        torch.save(models[0].state_dict(), f"weights-{os.environ['RANK']}.pt")
    raise
"""


def torchrun(tmp_path, data, out, steps, *options, keep_at=None):
    """`codec train` in two processes, on the CPU even where there is a GPU (two ranks need two);
    `keep_at`: where to keep a copy of step 2's checkpoint."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(launcher),
        "train", "--data", str(data), "--lmbda", "0.01", "--out", str(out), "--N", "8", "--M", "16",
        "--steps", str(steps), "--batch-size", "2", "--crop", "64", "--threads", "2", *options,
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": root, **({"KEEP_AT": str(keep_at)} if keep_at else {})}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)  # no time limit: a loaded machine may take minutes
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_processes_train_one_model_and_resume_exactly(dataset, tmp_path, codec_home):
    """One test, as each launch costs two imports of torch and compressai."""
    straight, interrupted = tmp_path / "straight.ckpt", tmp_path / "interrupted.ckpt"
    result = torchrun(tmp_path, dataset, straight, 4, "--name", "ddp", keep_at=interrupted)
    ranks = [torch.load(tmp_path / f"weights-{rank}.pt") for rank in (0, 1)]
    state = Checkpoint.load(straight)
    assert state["step"] == 4 and len(state["rng"]) == 2
    assert "2 processes" in state["hardware"]
    for key, value in state["model"].items():
        assert torch.equal(ranks[0][key], value) and torch.equal(ranks[1][key], value), key
    log = [json.loads(line) for line in straight.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [4] and math.isfinite(log[0]["loss"])  # rank 0 alone logs
    assert (result.stdout + result.stderr).count("registered model ddp") == 1
    assert get_card("ddp").config["N"] == 8

    assert Checkpoint.load(interrupted)["step"] == 2
    result = torchrun(tmp_path, dataset, interrupted, 4)
    assert f"resuming {interrupted} at step 2" in result.stdout + result.stderr  # not a new run that the seed makes equal
    resumed = Checkpoint.load(interrupted)
    assert resumed["step"] == 4
    for key, value in state["model"].items():
        assert torch.equal(resumed["model"][key], value), key
