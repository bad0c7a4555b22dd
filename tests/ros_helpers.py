"""Helpers for tests that talk to real ROS processes over DDS: start subprocesses, wait on conditions."""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from dfer_ros.ros.processes import start_python, stop

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_until(condition: Callable[[], bool], timeout: float, step: Callable[[], None], what: str) -> None:
    """Call ``step`` (e.g. one executor spin) until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        step()


@contextmanager
def ros_process(args: list[str], env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run ``python args...`` with the test ROS environment; stop it with SIGINT (clean shutdown) at exit."""
    proc = start_python(args, env, log_path, cwd=REPO)
    try:
        yield proc
    finally:
        stop(proc, timeout=10)


def read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace") if log_path.exists() else ""


def sample_frames(count: int, start: int = 0) -> list:
    """``count`` frames of the real face video (cap12, one face) from frame ``start``; skips the test if missing."""
    import cv2
    import pytest

    from dfer_ros import assets

    try:
        path = assets.sample_video()
    except assets.AssetError as exc:
        pytest.skip(f"sample video missing: {exc}")
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok, f"cannot read {path}"
        out.append(frame)
    capture.release()
    return out
