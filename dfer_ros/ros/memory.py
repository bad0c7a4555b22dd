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

M_ARENA_MAX = -8  # mallopt parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3
DEFAULT_ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed


def _mallopt():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Keep glibc's mmap threshold at ``threshold`` bytes instead of letting it rise; True when applied.

    glibc serves blocks above the threshold with their own ``mmap`` and gives them back on ``free``. By default
    the threshold rises to the size of each such block freed (up to 32 MB), so after the first frame-sized
    buffer (a 640x480 bgr8 image is 0.9 MB) is freed, every later one comes from the arenas, where interleaved
    frames, crops and tensors of several threads leave holes the arenas keep: the node's anonymous memory
    rose in steps of ~10 MB under competing load (docs/hostile_inputs.md). Setting the threshold also turns
    the rise off. A user's ``MALLOC_MMAP_THRESHOLD_`` (or the glibc.malloc.mmap_threshold tunable) wins.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = _mallopt()
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, int(threshold)))


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the node starts its threads; True when applied. Also keeps the
    mmap threshold fixed (``fix_mmap_threshold``), so frame-sized buffers go back to the system when freed.

    A user's ``MALLOC_ARENA_MAX`` wins (glibc already read it at start-up); on a C library without
    ``mallopt`` (musl, macOS) nothing changes.
    """
    fix_mmap_threshold()
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _mallopt()
    return bool(mallopt and mallopt(M_ARENA_MAX, int(arenas)))


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
