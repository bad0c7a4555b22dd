"""Give a Python thread its name at the operating-system level, so per-thread CPU (``top -H``, /proc, the
benchmarks' per-thread figures) says which of the pipeline's threads spent it. Python 3.11 names threads only for
itself; the kernel sees every one as ``python``."""
from __future__ import annotations

import ctypes
import ctypes.util
import threading

_PR_SET_NAME = 15
_libc = None


def name_native_thread(name: str = "") -> None:
    """Set the calling thread's kernel name (at most 15 bytes) to ``name``, or to its Python name; does nothing
    where prctl is unavailable (not Linux)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.prctl(_PR_SET_NAME, (name or threading.current_thread().name).encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
