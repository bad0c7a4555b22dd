"""Keep a long-running node's heap from drifting: fewer glibc malloc arenas.

glibc gives each new thread that contends for the heap its own arena (up to 8 per core). The node runs
many threads (ONNX Runtime, MediaPipe, the landmarker worker, the descriptor thread, DDS), and memory freed
in an arena stays mapped there, so RSS wanders up and down by tens of MB as faces come and go. A 30,000-frame
soak (`dfer bench soak`, README) with the default arenas read a least-squares slope of 0.21 MB per 1,000
frames from such excursions (471-511 MB); with two arenas set here: 559.0 MB at frame 5,000, 559.5 MB at
30,000, slope 0.019 MB per 1,000 frames, 1.1 MB growth after the warm-up.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the node starts its threads; True when applied.

    A user's ``MALLOC_ARENA_MAX`` wins (glibc already read it at start-up); on a C library without
    ``mallopt`` (musl, macOS) nothing changes.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, int(arenas)))


def anonymous_rss_bytes() -> int:
    """This process's anonymous resident memory (``RssAnon`` in ``/proc/self/status``) in bytes; 0 where the
    kernel does not report it (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
