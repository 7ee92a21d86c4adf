"""Work spread over worker processes, one thread each: how `codec eval` runs its baselines and
`codec compress -j N` its inputs.

Processes rather than threads because the entropy coder and the image I/O hold the GIL; one torch
thread per worker because the workers already fill the cores. spawn, not fork: a forked child of a
process that has used torch's OpenMP threads can hang.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Iterator

import torch

from codec.allocator import retain_freed_memory


def _worker_init() -> None:
    """Workers leave Ctrl-C to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    retain_freed_memory()


def in_processes(function: Callable, items: Iterable, jobs: int) -> Iterator[tuple]:
    """Yield (item, function(item)) as the workers finish, in any order. A worker's exception is
    raised here; on it or on Ctrl-C the queued items are dropped and the workers finish theirs."""
    items = list(items)
    pool = ProcessPoolExecutor(min(jobs, len(items)), mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)
    try:
        futures = {pool.submit(function, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
