"""Keep a long-running node's heap from drifting: fewer glibc malloc arenas, and their free pages trimmed.

glibc gives each new thread that contends for the heap its own arena (up to 8 per core). The node runs
many threads (ONNX Runtime, MediaPipe, the landmarker worker, the descriptor thread, DDS), and memory freed
in an arena stays mapped there, so RSS wanders up and down by tens of MB as faces come and go. A 30,000-frame
soak (`dfer bench soak`, README) with the default arenas read a least-squares slope of 0.21 MB per 1,000
frames from such excursions (471-511 MB); with two arenas set here: 559.0 MB at frame 5,000, 559.5 MB at
30,000, slope 0.019 MB per 1,000 frames, 1.1 MB growth after the warm-up. Under competing load the two arenas
still grew in ~10 MB steps (holes left by frame-sized buffers that only the threads of the same arena could
reuse); ``trim_free_heap`` gives those pages back, but RSS still wandered by 30-60 MB (least-squares slopes
0.142-1.636 MB per 1,000 frames in three runs). One arena, where every thread's holes serve every thread:
slopes -0.034 and 0.027 in two runs, and no CPU cost measured (docs/hostile_inputs.md).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
DEFAULT_ARENAS = 1  # the main heap only: see the module docstring
TRIM_HEAP_EVERY_S = 5.0  # the node's trim_free_heap period (its CPU cost: docs/hostile_inputs.md)


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the node starts its threads; True when applied.

    A user's ``MALLOC_ARENA_MAX`` wins (glibc already read it at start-up); on a C library without
    ``mallopt`` (musl, macOS) nothing changes.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    return bool(mallopt and mallopt(M_ARENA_MAX, int(arenas)))


def trim_free_heap() -> bool:
    """Give the free pages inside glibc's arenas back to the system (``malloc_trim(0)``); True when some were.

    glibc raises its mmap threshold to the size of each freed mmapped block, so after the first frame-sized
    buffer (a 640x480 bgr8 image is 0.9 MB) every later one comes from the arenas, where interleaved frames,
    crops and tensors of several threads leave holes. Free memory inside an arena heap stays resident until
    the heap's top is free; ``malloc_trim`` releases the whole free pages of every hole. The node calls it once
    every ``TRIM_HEAP_EVERY_S`` seconds (docs/hostile_inputs.md has what it changed and costs). No-op without glibc.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    return bool(trim and trim(0))


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc >= 2.33): every field a ``size_t``."""
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_in_use_bytes() -> int:
    """Bytes malloc has handed out and not had back (``uordblks + hblkhd`` of ``mallinfo2``); -1 without it.

    Unlike RSS this does not saw with the free pages between trims or with holes, so a leak of malloc'd
    memory (native buffers, large numpy arrays) shows as a slope in it alone. Python's small objects live in
    pymalloc arenas outside malloc: ``sys.getallocatedblocks()`` counts those. Walks the free lists of the
    arenas, so it is read once per heap trim, not per frame.
    """
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is None:
        return -1
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


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
