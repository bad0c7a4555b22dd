"""Replace a file so that no reader ever sees it half written, and a crash leaves the old one.

The data goes to a temporary file in the same folder (``tempfile.mkstemp``: mode 0600 unless ``mode`` says
otherwise), which is then renamed over the target (atomic on POSIX). Used for converted models and their
sidecars (``estimators.onnx_cache``) and the re-identification gallery file (``perception.gallery``, durable).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def atomic_write(path: Path, data: bytes, mode: Optional[int] = None, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` (its folder created), replacing it atomically; ``mode`` for the new file.

    ``durable``: the data and then the rename are synced to disk (``fsync`` of the file, then of its folder)
    before returning, so a promise made after the call (e.g. "this person is forgotten") survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
