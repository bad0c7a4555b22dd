"""Build the test stand-in of ROS4HRI's ``hri_msgs`` (tests/hri_msgs_stand_in) with cmake/rosidl against the
venv's ROS wheels, the way ``scripts/setup.sh`` builds this package's messages, into ``build/test_hri_msgs``.

The build is cached: it re-runs only when the stand-in's sources change (a hash stamp in the prefix). It is
installed into its own prefix, never into the venv, so the rest of the suite keeps seeing no ``hri_msgs``.
Processes that import it need ``hri_env`` (PYTHONPATH + LD_LIBRARY_PATH); the test process itself calls
``import_into_this_process``, which preloads the typesupport libraries because LD_LIBRARY_PATH is read only
at process start.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "tests" / "hri_msgs_stand_in"
ROOT = REPO / "build" / "test_hri_msgs"
VENV = Path(sys.prefix)


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def site_dir(prefix: Path) -> Path:
    return prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(VENV)


def build() -> Path:
    """The install prefix holding the built stand-in (built now unless the cached build is current)."""
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake is not installed")
    prefix, work = ROOT / "install", ROOT / "build"
    stamp = prefix / ".source_sha256"
    wanted = _source_hash()
    if stamp.is_file() and stamp.read_text() == wanted and (site_dir(prefix) / "hri_msgs" / "msg").is_dir():
        return prefix
    shutil.rmtree(ROOT, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    steps = [
        ["cmake", str(SOURCE), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
         f"-DPython3_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", ".", "-j", str(os.cpu_count() or 2)],
        ["cmake", "--install", "."],
    ]
    for step in steps:
        result = subprocess.run(step, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(step)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    stamp.write_text(wanted)
    return prefix


def hri_env(prefix: Path, base: dict) -> dict:
    """``base`` plus what a child process needs to import the stand-in."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir(prefix)), base.get("PYTHONPATH", "")]))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(prefix / "lib"), base.get("LD_LIBRARY_PATH", "")]))
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(prefix), base.get("AMENT_PREFIX_PATH", "")]))
    return env


def import_into_this_process(prefix: Path):
    """Make ``hri_msgs.msg`` importable here; returns the module."""
    libs = sorted((prefix / "lib").glob("libhri_msgs__*.so"))
    pending = list(libs)
    while pending:  # load in dependency order: retry what failed until nothing more loads
        failed = []
        for lib in pending:
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(lib)
        if len(failed) == len(pending):
            raise OSError(f"cannot load {[p.name for p in failed]} from {prefix / 'lib'}")
        pending = failed
    site = str(site_dir(prefix))
    if site not in sys.path:
        sys.path.insert(0, site)
    import hri_msgs.msg

    return hri_msgs.msg
