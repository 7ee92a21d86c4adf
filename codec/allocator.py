"""Keep freed memory in the process instead of handing it back to the kernel after every tensor.

glibc serves large blocks (a feature map here is tens of MB) with mmap and returns them with munmap
when freed, so every layer's output is faulted in again page by page, and on virtual machines a page
fault is expensive. One arena, a high trim threshold and mmap only for blocks larger than a Kodak
image's feature maps make freed blocks reusable at once; the price is that the process keeps its
peak heap until it exits, which a coding process does soon anyway.

Large images are coded in tiles whose stages leave blocks of many sizes behind, and a heap that keeps
them all fragments, so its peak varies from run to run. Within `bounded_heap` the heap gives back
what it frees and maps large blocks, which bounds the peak for some more wall time. What each setting
buys, and the commands that measure it: docs/performance.md, "Keeping freed memory".
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
RETAIN = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 64 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))
BOUNDED = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 20), (M_TOP_PAD, 0))


def _glibc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


_LIBC = _glibc()
_retaining = False


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the kernel (glibc's malloc_trim); elsewhere nothing."""
    try:
        _LIBC.malloc_trim(0)
    except AttributeError:  # not glibc, or no C library found
        pass


def _apply(settings) -> bool:
    try:
        return all(_LIBC.mallopt(option, value) == 1 for option, value in settings)
    except AttributeError:  # not glibc (macOS, musl, Windows): nothing to do
        return False


def retain_freed_memory() -> bool:
    """Apply the settings above (glibc only); True if they took effect."""
    global _retaining
    _retaining = _apply(RETAIN)
    return _retaining


@contextlib.contextmanager
def bounded_heap(large: bool):
    """For a large image (`large`) in a process that retains freed memory: hand the heap's free
    memory back, and within, keep handing it back and map large blocks (BOUNDED). Otherwise nothing."""
    if not (large and _retaining and _apply(BOUNDED)):
        yield
        return
    release_freed_memory()
    try:
        yield
    finally:
        _apply(RETAIN)
