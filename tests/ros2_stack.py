"""The real ROS 2 Jazzy launch system, ``ros2`` command line tools, ``composition_interfaces`` and ``hri_msgs``
for the tests, from the unmodified upstream sources in ``../shared/ros2_sources`` (none of them is on PyPI).

``python tests/ros2_stack.py install`` (run by ``scripts/setup.sh`` when the sources are there) checks each
archive against ``SHA256SUMS``, unpacks them into ``build/ros2_sources``, installs the pure-Python packages
(launch, launch_ros, launch_pytest, launch_testing(_ros), ros2launch, ros2cli, ros2run, ros2pkg, ros2topic,
ros2node, ros2param, ros2service, ros2lifecycle, ros2interface, rosidl_runtime_py) into the venv with
``pip install --no-deps`` and builds the interface packages with cmake against the venv's ament/rosidl, as
``scripts/setup.sh`` builds this project's messages: ``composition_interfaces`` (imported by launch_ros) into
the venv prefix, ``hri_msgs`` into a prefix of its own (``<venv>/opt/hri_msgs``) so that the rest of the suite
still runs without ``hri_msgs`` (the node's "hri.enabled but no hri_msgs" path is tested too). Idempotent: a
stamp in ``<venv>/.dfer_stamps`` holds the hash of SHA256SUMS and of the package lists below.

Tests call ``require_launch()``, ``require_ros2_cli()`` or ``hri_msgs_prefix()``: they skip with the reason
where neither an installed ROS (a robot: ``source /opt/ros/jazzy/setup.bash``) nor the sources provide them.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
SOURCES_ENV = "DFER_ROS2_SOURCES"  # overrides ../shared/ros2_sources
UNPACKED = REPO / "build" / "ros2_sources"
STAMP = VENV / ".dfer_stamps" / "ros2_stack"
HRI_PREFIX = VENV / "opt" / "hri_msgs"

# (archive, folder inside it) of every pure-Python package, in dependency order
PURE_PYTHON = (
    ("rosidl_runtime_py-jazzy.tar.gz", "rosidl_runtime_py"),
    ("launch-jazzy.tar.gz", "launch/launch"),
    ("launch-jazzy.tar.gz", "launch/launch_xml"),
    ("launch-jazzy.tar.gz", "launch/launch_yaml"),
    ("launch-jazzy.tar.gz", "launch/launch_testing"),
    ("launch-jazzy.tar.gz", "launch/launch_pytest"),
    ("launch_ros-jazzy.tar.gz", "launch_ros/launch_ros"),
    ("launch_ros-jazzy.tar.gz", "launch_ros/launch_testing_ros"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2cli"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2pkg"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2run"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2node"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2service"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2topic"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2param"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2lifecycle"),
    ("ros2cli-jazzy.tar.gz", "ros2cli/ros2interface"),
    ("launch_ros-jazzy.tar.gz", "launch_ros/ros2launch"),
)
# (archive, folder, install prefix) of the interface packages built with cmake
INTERFACES = (
    ("rcl_interfaces-jazzy.tar.gz", "rcl_interfaces/composition_interfaces", VENV),
    ("hri_msgs-2.0.0.tar.gz", "hri_msgs", HRI_PREFIX),
)


class StackUnavailable(RuntimeError):
    """The sources are absent or do not match their checksums; the message says which and why."""


def sources_dir() -> Path:
    return Path(os.environ.get(SOURCES_ENV) or REPO.parent / "shared" / "ros2_sources")


def verify_sources(folder: Optional[Path] = None) -> dict[str, Path]:
    """Archive name -> path, each checked against ``SHA256SUMS``; StackUnavailable when absent or altered."""
    folder = folder or sources_dir()
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise StackUnavailable(f"no ROS 2 sources at {folder} (SHA256SUMS missing): the launch system, the ros2 "
                               f"tools and hri_msgs are not on PyPI; CI has them in ../shared/ros2_sources")
    wanted = dict(reversed(line.split(None, 1)) for line in sums.read_text().splitlines() if line.strip())
    wanted = {name.strip().lstrip("*"): digest for name, digest in wanted.items()}
    needed = {archive for archive, _ in PURE_PYTHON} | {archive for archive, _, _ in INTERFACES}
    paths = {}
    for name in sorted(needed):
        path = folder / name
        if name not in wanted:
            raise StackUnavailable(f"{sums} lists no checksum for {name}")
        if not path.is_file():
            raise StackUnavailable(f"{path} is missing")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != wanted[name]:
            raise StackUnavailable(f"{path} has sha256 {actual}, SHA256SUMS says {wanted[name]}")
        paths[name] = path
    return paths


def _wanted_stamp(folder: Path) -> str:
    """The checksums and what is installed from them (not this file: editing its test helpers re-installs nothing)."""
    digest = hashlib.sha256((folder / "SHA256SUMS").read_bytes())
    digest.update(repr((PURE_PYTHON, [(archive, sub) for archive, sub, _ in INTERFACES])).encode())
    return digest.hexdigest()


def site_dir(prefix: Path) -> Path:
    return prefix / Path(sysconfig.get_paths()["purelib"]).relative_to(VENV)


def _run(step: list, cwd: Path, env: Optional[dict] = None, log: Optional[Path] = None) -> None:
    result = subprocess.run(step, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, step))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _cmake_install(source: Path, prefix: Path, work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), PATH=f"{VENV / 'bin'}:{os.environ['PATH']}")
    for step in (["cmake", str(source), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
                  f"-DPython3_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"],
                 ["cmake", "--build", ".", "-j", str(os.cpu_count() or 2)],
                 ["cmake", "--install", "."]):
        _run(step, work, env)


def install(folder: Optional[Path] = None, log=print) -> bool:
    """Install the stack into this interpreter's venv unless the stamp says it is there; True when it ran."""
    folder = folder or sources_dir()
    archives = verify_sources(folder)
    wanted = _wanted_stamp(folder)
    if STAMP.is_file() and STAMP.read_text() == wanted and importable("launch_ros", "ros2cli") \
            and (site_dir(HRI_PREFIX) / "hri_msgs" / "msg").is_dir():
        return False
    if shutil.which("cmake") is None:
        raise StackUnavailable("cmake is not installed (needed for composition_interfaces and hri_msgs)")
    shutil.rmtree(UNPACKED, ignore_errors=True)
    UNPACKED.mkdir(parents=True)
    for path in archives.values():
        with tarfile.open(path) as archive:
            archive.extractall(UNPACKED, filter="data")
    log(f"installing launch, launch_ros, launch_pytest, ros2cli and its verbs from {folder} (pip --no-deps)")
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
          "--no-build-isolation", *[str(UNPACKED / sub) for _, sub in PURE_PYTHON]], REPO)
    for _, sub, prefix in INTERFACES:
        log(f"building {Path(sub).name} (cmake/rosidl) into {prefix}")
        _cmake_install(UNPACKED / sub, prefix, UNPACKED / "_build" / Path(sub).name)
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    STAMP.write_text(wanted)
    return True


def importable(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _unavailable_reason(what: str) -> str:
    try:
        verify_sources()
    except StackUnavailable as exc:
        return f"{what} is not installed and cannot be: {exc}"
    return f"{what} is not installed: run `make setup` (it installs it from {sources_dir()})"


def require(pytest, *modules: str) -> None:
    """Skip the calling test, or the calling test module when called at its top, with the reason unless every
    module is importable."""
    if not importable(*modules):
        pytest.skip(_unavailable_reason(", ".join(modules)), allow_module_level=True)


def colcon_executable() -> Optional[str]:
    """colcon from PyPI, installed by ``make setup`` into a venv of its own (requirements/colcon.txt), else PATH's."""
    local = VENV / "opt" / "colcon" / "bin" / "colcon"
    return str(local) if local.is_file() else shutil.which("colcon")


def ros2_executable() -> str:
    """The ``ros2`` command of this venv (or of the sourced ROS install)."""
    local = VENV / "bin" / "ros2"
    return str(local) if local.is_file() else (shutil.which("ros2") or "ros2")


# --- hri_msgs: the real REP-155 messages ---------------------------------------------------------------------
def hri_msgs_prefix(pytest) -> Optional[Path]:
    """Where ``hri_msgs`` is: the prefix built by ``install``, else None when this interpreter imports it from
    elsewhere (a robot's ROS install); skips the calling test with the reason when there is neither. The built
    prefix is checked first: once ``import_hri_msgs`` has put it on this process's sys.path, hri_msgs is
    importable here, but child processes still need ``hri_env``."""
    if (site_dir(HRI_PREFIX) / "hri_msgs" / "msg").is_dir():
        return HRI_PREFIX
    if importable("hri_msgs"):
        return None
    pytest.skip(_unavailable_reason("hri_msgs"))


def hri_env(prefix: Optional[Path], base: dict) -> dict:
    """``base`` plus what a child process needs to import ``hri_msgs`` from ``prefix``."""
    env = dict(base)
    if prefix is None:
        return env
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir(prefix)), base.get("PYTHONPATH", "")]))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(prefix / "lib"), base.get("LD_LIBRARY_PATH", "")]))
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(prefix), base.get("AMENT_PREFIX_PATH", "")]))
    return env


def import_hri_msgs(prefix: Optional[Path]):
    """Make ``hri_msgs.msg`` importable in this process; returns the module. The typesupport libraries are
    preloaded because LD_LIBRARY_PATH is read only at process start."""
    if prefix is not None:
        pending = sorted((prefix / "lib").glob("libhri_msgs__*.so"))
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


def main(argv: list) -> int:
    if argv[1:] != ["install"]:
        print(f"usage: {argv[0]} install", file=sys.stderr)
        return 2
    try:
        install(log=lambda line: print(f"setup: {line}"))
    except StackUnavailable as exc:
        print(f"setup: not installing the ROS 2 launch system, ros2 tools and hri_msgs: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


# --- running the ros2 command and ros2 launch as a user does ---------------------------------------------------
def ros2_env(base: dict) -> dict:
    """``base`` (the test ROS environment) as a sourced workspace has it: this venv on AMENT_PREFIX_PATH and PATH."""
    env = dict(base)
    if (VENV / "share" / "ament_index").is_dir():
        env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(VENV), base.get("AMENT_PREFIX_PATH", "")]))
        env["PATH"] = os.pathsep.join([str(VENV / "bin"), base.get("PATH", os.defpath)])
    return env


# what a ros2 verb prints (and then exits) when it has not discovered the node or topic yet; `ros2 service call`
# waits for its service by itself
NOT_DISCOVERED_YET = ("Node not found", "Could not determine the type")


def run_ros2(args: list, env: dict, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """``ros2 ARGS...`` (stdout and stderr together in ``.stdout``), repeated while the output says the node or
    service has not been discovered yet (each call discovers the graph anew: ``--no-daemon`` or none), until
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 1.0)
        try:
            result = subprocess.run([ros2_executable(), *args], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, timeout=left)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"ros2 {' '.join(args)} did not finish within {timeout:.0f} s:\n"
                                 f"{(exc.stdout or b'')[-2000:]}") from None
        if not any(text in result.stdout for text in NOT_DISCOVERED_YET) or time.monotonic() > deadline:
            return result


def stop_group(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """Ctrl-C for a process started with ``start_new_session``: SIGINT to its group, SIGKILL after ``timeout``."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    return proc.returncode


class LaunchProcess:
    """``ros2 launch ARGS...`` in a session of its own (its processes form one group, like a terminal's foreground
    job), output to ``log_path``; ``ctrl_c`` sends SIGINT to the whole group as a terminal's Ctrl-C does. Leaving
    the ``with`` block kills whatever is still running."""

    def __init__(self, args: list, env: dict, log_path: Path, command: Optional[list] = None):
        """``command`` replaces ``ros2 launch ARGS...`` (e.g. a shell that sources a workspace first)."""
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(command or [ros2_executable(), "launch", *args], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> "LaunchProcess":
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ctrl_c(self, timeout: float = 60.0) -> int:
        """SIGINT to the process group; the launch's exit code (fails the test if it does not end in time)."""
        import signal

        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ros2 launch still running {timeout:.0f} s after Ctrl-C:\n{self.output()[-3000:]}") \
                from None

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ros2 launch still running after {timeout:.0f} s (it must end by itself):\n"
                                 f"{self.output()[-3000:]}") from None
