"""Helpers for tests that talk to real ROS processes over DDS: start subprocesses, wait on conditions."""
from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([PYTHON, *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(subprocess.signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace") if log_path.exists() else ""
