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

from dfer_ros.deprecation import warn_deprecated


def exec_cli(name: str, command: str) -> NoReturn:
    """Replace this process with ``python -m dfer_ros.cli.<name>`` and this process's arguments, after one
    deprecation line naming ``command``, the ``dfer`` form to use (these module commands go in the next release)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    warn_deprecated(f"python -m {spec.name if spec is not None else name}", command)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", f"dfer_ros.cli.{name}", *sys.argv[1:]])
