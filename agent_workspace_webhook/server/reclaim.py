"""Memory given back after connections close, so that it comes back after a flood of clients.

A closed connection's objects (uvicorn's protocol and its parser, the TLS protocol and its
buffers) refer to each other, so only the collector's full pass frees them: thousands piled up
between passes under a flood, with their TLS state, and RSS climbed with each flood. A full pass
frees them; glibc's malloc_trim then returns the freed pages to the system (glibc otherwise
keeps them for the next allocation). When this runs is the Gate's to say (gate.py): every so
many closed connections, and when a crowd has left.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable

from agent_workspace_webhook import logs


@functools.cache
def _trim() -> Callable[[], object]:
    """glibc's malloc_trim(0), or nothing where the C library has none (musl, macOS)."""
    import ctypes  # here: the first reclaim, not serve's start-up, pays for it

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the interpreter runs on
    if trim is None:
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


def reclaim() -> None:
    """Free what closed connections left in reference cycles, and return the pages to the system."""
    started = time.perf_counter()
    freed = gc.collect()
    _trim()()
    seconds = round(time.perf_counter() - started, 4)
    logs.logger().debug("memory reclaimed", extra={"fields": {"objects_freed": freed, "seconds": seconds}})
