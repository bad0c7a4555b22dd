"""The node caps glibc's malloc arenas itself, unless the user chose a number (docs/node.md, soak)."""
from __future__ import annotations

import os
import subprocess
import sys

from dfer_ros.ros import memory


def _run(code: str, *args: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code, *args], env=full, capture_output=True, text=True,
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

    from dfer_ros.ros import node_entry

    source = inspect.getsource(node_entry.main)
    assert source.index("limit_malloc_arenas()") < source.index("StopSignals()") < source.index("import main")
    assert memory.DEFAULT_ARENAS == 1


ARENAS = r"""
import ctypes, re, sys, tempfile, threading
if sys.argv[1] == "cli":
    import dfer_ros.cli  # what every console script of the offline tools imports first
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
barrier = threading.Barrier(9)

def work():  # eight threads alive at once, each allocating: glibc gives each an arena up to the cap
    libc.malloc(1000)
    barrier.wait()
    barrier.wait()

threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
barrier.wait()
path = tempfile.mktemp()
handle = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(handle))
libc.fclose(ctypes.c_void_p(handle))
barrier.wait()
[t.join() for t in threads]
print(len(re.findall(r"<heap nr=", open(path).read())))
"""


def test_the_offline_tools_cap_the_arenas_too():
    """Counted by glibc itself (malloc_info's heaps) with eight threads allocating at once."""
    uncapped = int(_run(ARENAS, "none"))
    capped = int(_run(ARENAS, "cli"))
    assert uncapped > memory.DEFAULT_ARENAS + 1, uncapped  # the control: one arena per thread
    assert capped <= memory.DEFAULT_ARENAS, capped



TRIM = r"""
import ctypes, sys
from dfer_ros.ros.memory import limit_malloc_arenas, trim_free_heap
limit_malloc_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p

def anon_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon:")).split()[1])

blocks = [libc.malloc(4000) for _ in range(10000)]  # 40 MB of small blocks, below the mmap threshold
for b in blocks:
    ctypes.memset(b, 1, 4000)
for b in blocks[:-1]:  # all free but the last: the heap's top is in use, so free() gives nothing back
    libc.free(ctypes.c_void_p(b))
before = anon_kib()
if sys.argv[1] == "trim":
    trim_free_heap()
print(before - anon_kib())
"""


def test_trim_gives_back_the_free_pages_inside_the_heap():
    """Free memory below a block in use stays resident (the control) until the heap is trimmed."""
    assert int(_run(TRIM, "none")) < 1000  # KiB given back without a trim
    assert int(_run(TRIM, "trim")) > 30_000  # of the ~39 MB freed


def test_heap_in_use_counts_what_malloc_handed_out_and_not_its_free_pages():
    """What the node's diagnostics and the soak read (ros/memory.heap_in_use_bytes): up by a live block's size,
    back down when it is freed, whether malloc put it in the heap or in its own mapping."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    for size in (64 * 1024, 48 * 2**20):  # below and above glibc's default mmap threshold
        before = memory.heap_in_use_bytes()
        block = libc.malloc(size)
        held = memory.heap_in_use_bytes()
        libc.free(ctypes.c_void_p(block))
        after = memory.heap_in_use_bytes()
        assert size <= held - before < size + 64 * 1024, (size, held - before)
        assert abs(after - before) < 64 * 1024, (size, after - before)
