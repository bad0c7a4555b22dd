"""Native libraries' own stderr chatter (MediaPipe / TFLite: ``W0000 ... inference_feedback_manager.cc``,
"Created TensorFlow Lite XNNPACK delegate", "Logging before InitGoogle()") kept out of users' terminals.

MediaPipe writes these lines with its C++ logger straight to file descriptor 2 while a graph is created; no
environment variable of glog, absl or TF silences them (measured with mediapipe 1.2.2). ``native_stderr_to_log``
points descriptor 2 at a temporary file for the duration of such a call and re-emits each captured line at DEBUG
on the given Python logger (in the node: the ROS logger, ``--ros-args --log-level debug`` shows them). Set
``DFER_NATIVE_LOGS=1`` to let them through to stderr unchanged.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

ENV = "DFER_NATIVE_LOGS"


def native_logs_shown() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def native_stderr_to_log(logger: logging.Logger, source: str) -> Iterator[None]:
    """While the block runs, what anything writes to descriptor 2 goes to ``logger.debug`` ("<source>: line")."""
    if native_logs_shown():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.debug("%s: %s", source, line.rstrip())
