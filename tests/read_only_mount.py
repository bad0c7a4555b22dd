"""Python source that, run first in a fresh process, bind-mounts ``sys.argv[1]`` read-only in a private mount
namespace of that process (a real read-only folder, even for root), or prints ``NO_READ_ONLY_MOUNT <reason>``
and exits 0 where the kernel refuses. Used by the tests of forgetting on a folder the node cannot write."""

PRELUDE = r"""
import ctypes, os, sys
_libc = ctypes.CDLL(None, use_errno=True)
_folder = sys.argv[1].encode()
# unshare(CLONE_NEWNS); mount --make-rprivate /; mount --bind F F; mount -o remount,bind,ro F
if (_libc.unshare(0x20000) or _libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)
        or _libc.mount(_folder, _folder, None, 0x1000, None)
        or _libc.mount(None, _folder, None, 0x1000 | 0x20 | 0x1, None)):
    print("NO_READ_ONLY_MOUNT", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(0)
"""
