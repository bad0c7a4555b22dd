"""The node caps glibc's malloc arenas itself, unless the user chose a number (docs/node.md, soak)."""
from __future__ import annotations

import os
import subprocess
import sys

from dfer_ros.ros import memory


def _run(code: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_arenas_are_capped_on_glibc():
    applied = _run("from dfer_ros.ros.memory import limit_malloc_arenas; print(limit_malloc_arenas())")
    assert applied == "True"


def test_a_users_malloc_arena_max_wins():
    applied = _run("from dfer_ros.ros.memory import limit_malloc_arenas; print(limit_malloc_arenas())",
                   MALLOC_ARENA_MAX="4")
    assert applied == "False"


def test_the_node_entry_point_applies_it_first():
    import inspect

    from dfer_ros.ros import node

    source = inspect.getsource(node.main)
    assert source.index("limit_malloc_arenas()") < source.index("StopSignals()")
    assert memory.DEFAULT_ARENAS == 2
