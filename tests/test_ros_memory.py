"""The node caps glibc's malloc arenas itself, unless the user chose a number (docs/node.md, soak)."""
from __future__ import annotations

import os
import subprocess
import sys

from dfer_ros.ros import memory


def _run(code: str, *args: str, **env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}
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
    assert memory.DEFAULT_ARENAS == 2


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



MMAPPED = r"""
import ctypes, sys
if sys.argv[1] == "cli":
    import dfer_ros.cli  # what every console script of the offline tools imports first
elif sys.argv[1] == "node":
    from dfer_ros.ros.memory import limit_malloc_arenas
    limit_malloc_arenas()  # what dfer node calls first
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc.mallinfo2.restype = MallInfo2
libc.free(ctypes.c_void_p(libc.malloc(4 << 20)))  # a freed 4 MB block: glibc's threshold would rise to 4 MB
before = libc.mallinfo2().hblkhd
frame = libc.malloc(921600)  # a 640x480 bgr8 frame
print(libc.mallinfo2().hblkhd - before >= 921600)  # its own mapping: returned to the system on free
libc.free(ctypes.c_void_p(frame))
"""


def test_frame_sized_blocks_stay_mmapped_after_a_larger_one_was_freed():
    """Counted by glibc itself (mallinfo2's mmapped bytes): without the fixed threshold the frame comes from
    an arena, whose holes the process keeps."""
    assert _run(MMAPPED, "none") == "False"  # the control: glibc's rising threshold
    assert _run(MMAPPED, "node") == "True"
    assert _run(MMAPPED, "cli") == "True"
    assert _run(MMAPPED, "node", MALLOC_MMAP_THRESHOLD_="8388608") == "False"  # a user's choice wins
