"""Where a run computes: its device and arithmetic, and under torchrun its processes, each training
on its own crops while DistributedDataParallel averages the gradients; rank 0 alone writes, prints
and registers."""

from __future__ import annotations

import contextlib
import os
import platform

import torch
import torch.distributed as dist

from codec.errors import CodecError


@contextlib.contextmanager
def subnormals_flushed():
    """Subnormal floats (gradients and Adam moments far below 1e-38) take x86's slow path; flushed to
    zero, training steps run faster and steadier (docs/training.md has the timings). Training only: coding
    keeps IEEE arithmetic, and the flag is restored to torch's default after."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def training_device(choice: str) -> torch.device:
    """The device `--device` names (TrainConfig knows the names): cpu, cuda (refused where there is
    none, which only this machine can tell), or auto (CUDA if any)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda: this machine has no CUDA device that torch can use")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def processes(device_choice: str = "auto"):
    """Yield (rank, world_size, device). Under torchrun (which sets WORLD_SIZE, RANK and LOCAL_RANK)
    join its process group, gloo on the CPU or nccl with one GPU per process, and leave it at the end."""
    device = training_device(device_choice)
    if device.type == "cuda":
        # TensorFloat-32 convolutions and products (those outside a bfloat16 autocast); the entropy
        # models' likelihoods are elementwise and stay float32.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: the fastest algorithms, chosen once
    if "WORLD_SIZE" not in os.environ:
        yield 0, 1, device
        return
    rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise CodecError(f"more processes per node than the {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    try:
        yield rank, world_size, device
    finally:
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 under torchrun, or the only process: the one that writes, prints and registers."""
    return int(os.environ.get("RANK", "0")) == 0


def rng_states(generator: torch.Generator, device: torch.device) -> list[dict]:
    """Every rank's random state (its crops and its quantization noise), for an exact resume."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":  # the quantization noise is drawn on the GPU
        state["cuda_rng"] = torch.cuda.get_rng_state()
    if not dist.is_initialized():
        return [state]
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def rank0_decides(flag: bool, device: torch.device) -> bool:
    """Rank 0's flag on every rank: the ranks' clocks differ, but they must checkpoint at the same step."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


def mean_over_ranks(metrics: dict, device: torch.device) -> dict:
    """The metrics averaged over the ranks, so that the log describes the whole batch."""
    if not dist.is_initialized():
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)  # a sum: gloo has no average
    return dict(zip(metrics, (values / dist.get_world_size()).tolist()))


def hardware() -> str:
    """What trained the model, for its manifest: the GPUs, or the CPU model and the threads used."""
    processes = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_initialized():  # the run trains there (not merely on a machine that has one: --device cpu)
        name = torch.cuda.get_device_name(0)
        return name if processes == 1 else f"{processes} x {name}"
    cpu = platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = f"{names[0]} ({platform.machine()})" if names else cpu
    except OSError:
        pass
    threads = f"{torch.get_num_threads()} threads"
    return f"CPU {cpu}, " + (threads if processes == 1 else f"{processes} processes x {threads}")
