"""Replace a file so that no reader ever sees it half written, and a crash leaves the old one.

The data goes to a temporary file in the same folder (``tempfile.mkstemp``: mode 0600 unless ``mode`` says
otherwise), which is then renamed over the target (atomic on POSIX). Used for converted models and their
sidecars (``estimators.onnx_cache``) and the re-identification gallery file (``perception.gallery``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def atomic_write(path: Path, data: bytes, mode: Optional[int] = None) -> Path:
    """Write ``data`` to ``path`` (its folder created), replacing it atomically; ``mode`` for the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
