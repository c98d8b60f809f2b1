"""Keep freed memory in the process for the next step instead of handing it back to the OS.

A training step allocates and frees the same few-megabyte tensors every time. glibc serves
blocks above its (adaptive) mmap threshold with fresh mappings and returns the top of the heap
once more than its trim threshold is free, so each step page-faults its large tensors in anew:
about 3,000 minor faults per symbolic-MATH step at R = 32 on this machine (``ntpt bench``), and a
fifth of the step's time. Fixing both thresholds keeps those blocks on the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap
TRIM_THRESHOLD = 256 << 20  # free memory kept at the heap's top


@functools.cache
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); False where the C library
    is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                           TRIM_THRESHOLD))
