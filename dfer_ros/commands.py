"""Documented commands named after a library module, run by the CLI module that parses their arguments.

Commands such as ``dfer bench crowd --faces 4`` are documented by the library module's
name, while argument parsing lives in ``dfer_ros/cli`` and nothing imports a CLI module (docs/architecture.md).
The library module's ``if __name__ == "__main__":`` block calls :func:`exec_cli`, which replaces the process
with ``python -m dfer_ros.cli.<name>`` and the same arguments: the same process id (a caller's signals and
``wait`` still reach the command), the same environment, and a fresh interpreter (what a memory benchmark
measures is the command's own memory).
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn


def exec_cli(name: str) -> NoReturn:
    """Replace this process with ``python -m dfer_ros.cli.<name>`` and this process's arguments."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", f"dfer_ros.cli.{name}", *sys.argv[1:]])
