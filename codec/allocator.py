"""Keep freed memory in the process instead of handing it back to the kernel after every tensor.

glibc serves large blocks (a feature map here is tens of MB) with mmap and returns them with munmap
when freed, so every layer's output is faulted in again page by page, and on these virtual machines
a page fault is expensive: measured, a GDN layer on a 768x512 image spent two thirds of its time
there. One arena, a high trim threshold and mmap only from 64 MB make freed blocks reusable at once;
the price is that the process keeps its peak heap until it exits, which a coding process does soon
anyway. Blocks of 64 MB and more (a Kodak feature map is 50 MB; whole-image tensors at 4K are 100
MB) still come and go by mmap: kept in the heap too, they fragmented it, and a 4K compress peaked
anywhere from 1.39 to 1.77 GB from run to run.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8


def retain_freed_memory() -> bool:
    """Apply the settings above (glibc only); True if they took effect."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows): nothing to do
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 64 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)
