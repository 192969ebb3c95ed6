"""Giving memory back to the system after a burst of queued requests.

::

    trim = MemoryTrim()
    trim.grew(len(body))             # a request's bytes entered the queue
    if trim.due(queued_bytes=0, now=time.monotonic()):
        trim.run()                   # glibc malloc_trim(0): free pages go back to the kernel

CPython frees a request's frames as soon as the broker drops them, but glibc keeps
the freed pages: an 8 MiB frame is first served by mmap, and after its munmap glibc
raises its mmap threshold to that size (mallopt(3), "dynamic mmap threshold"), so the
next bursts come from the heap and its arenas, which shrink only from the top. Once
the queue has drained, ``malloc_trim(0)`` returns every whole free page of every
arena. Buffers libzmq's I/O thread still held at the drain are freed a moment later,
so a second trim follows one second on. Elsewhere (musl, macOS) there is nothing to
call and :meth:`run` is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# From this size up, an allocation is its own mapping (see fixed_mmap_threshold).
MMAP_THRESHOLD = 1024 * 1024
M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
# Trimming walks every arena: only worth it after a burst of at least this many bytes.
TRIM_AFTER_BYTES = 4 * 1024 * 1024
FOLLOW_UP_S = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        func = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_size_t]
    func.restype = ctypes.c_int
    return func


def fixed_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Serve every allocation of ``size`` bytes or more by its own mmap (glibc only).

    A fixed threshold turns off glibc's dynamic one, so a large frame goes back to
    the kernel when it is freed instead of staying in an arena. The whole process is
    affected: call it from a broker's own process, as the CLI does. True when set.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, size))


class MemoryTrim:
    """Decides when a drained queue is worth a ``malloc_trim(0)``, and runs it."""

    def __init__(self, threshold: int = TRIM_AFTER_BYTES) -> None:
        self.threshold = threshold
        self.pending = 0
        self.again: float | None = None
        self._trim = _malloc_trim()

    def grew(self, size: int) -> None:
        """Note that ``size`` bytes were queued since the last trim."""
        self.pending += size

    def due(self, queued_bytes: int, now: float) -> bool:
        """True once the queue is empty after a burst of at least the threshold,
        and once more :data:`FOLLOW_UP_S` later."""
        if queued_bytes != 0:
            return False
        if self.pending >= self.threshold:
            self.pending = 0
            self.again = now + FOLLOW_UP_S
            return True
        if self.again is not None and now >= self.again:
            self.again = None
            return True
        return False

    def run(self) -> bool:
        """Trim now; True when the C library could return memory to the kernel."""
        return bool(self._trim is not None and self._trim(0))
