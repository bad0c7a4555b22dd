"""Environment for every ROS process the project starts: DDS stays on this host.

Imported by tests, benchmarks and the demo before any rclpy import (it does not import rclpy itself).
``ROS_LOCALHOST_ONLY`` is not enough (ignored on newer distros), so this sets the discovery range, the
project's shared-memory-only Fast DDS profile under both variable names (Fast DDS 2 and 3), a log
folder inside the build tree and a private domain id.
"""
from __future__ import annotations

import fcntl
import glob
import os
import re
import sys
from pathlib import Path
from typing import Optional

from dfer_ros.assets import REPO_ROOT, logs_dir

PROFILE_NAME = "fastdds_localhost.xml"


def fastdds_profile() -> Path:
    """The project's Fast DDS profile: from the checkout, else from the installed share folder."""
    candidate = REPO_ROOT / "config" / PROFILE_NAME
    if candidate.is_file():
        return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("dfer_ros")) / "config" / PROFILE_NAME
        if installed.is_file():
            return installed
    except Exception:  # ament index missing or package not installed: fall through to the error
        pass
    raise FileNotFoundError(f"Fast DDS profile {PROFILE_NAME} not found in {REPO_ROOT / 'config'} or the dfer_ros share folder")


def domains_in_use() -> set[int]:
    """Domains of live Fast DDS participants on this host, read from their shared-memory port files.

    Fast DDS names them ``/dev/shm/fastrtps_port<N>`` with N = 7400 + 250 * domain + offset.
    """
    used = set()
    for path in glob.glob("/dev/shm/fastrtps_port*") + glob.glob("/dev/shm/fastdds_port*"):
        match = re.search(r"port(\d+)$", path)
        if match and int(match.group(1)) >= 7400:
            used.add((int(match.group(1)) - 7400) // 250)
    return used


def pick_domain_id(seed: Optional[int] = None) -> int:
    """A domain id in 1..100: derived from the process id (or ``seed``), skipping domains that live
    participants already use, so concurrent test runs, demos and benchmarks do not meet."""
    preferred = 1 + ((os.getpid() if seed is None else seed) % 100)
    used = domains_in_use()
    for offset in range(100):
        candidate = 1 + (preferred - 1 + offset) % 100
        if candidate not in used:
            return candidate
    return preferred


def local_ros_env(domain_id: Optional[int] = None, log_dir: Optional[Path] = None,
                  base: Optional[dict] = None) -> dict:
    """A copy of ``base`` (default os.environ) with the host-local ROS settings applied."""
    env = dict(os.environ if base is None else base)
    profile = str(fastdds_profile())
    env.update({
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "ROS_DOMAIN_ID": str(pick_domain_id() if domain_id is None else domain_id),
        "ROS_LOG_DIR": str(log_dir or logs_dir()),
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONUNBUFFERED": "1",
    })
    # ROS_LOCALHOST_ONLY=1 would make Jazzy ignore the discovery range (and warn on every start)
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_STATIC_PEERS", None)
    return env


def apply_local_ros_env(domain_id: Optional[int] = None, log_dir: Optional[Path] = None) -> dict:
    """Apply ``local_ros_env`` to this process (call before importing rclpy); returns what was set."""
    env = local_ros_env(domain_id, log_dir)
    Path(env["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def clean_shared_memory() -> int:
    """Remove Fast DDS shared-memory files left by processes that died (e.g. killed with -9).

    Every Fast DDS segment or port file ``/dev/shm/fastrtps_<name>`` has a lock file ``<name>_el`` that its
    live owner holds with ``flock``; when an exclusive lock on it can be taken, no process owns the segment
    any more (the same test ``fastdds shm clean`` uses). This works across PID and user namespaces, unlike
    reading /proc, so live participants of other runs are never touched. Returns the files removed.
    """
    removed = 0
    for lock_path in glob.glob("/dev/shm/fastrtps_*_el") + glob.glob("/dev/shm/fastdds_*_el"):
        base = lock_path[: -len("_el")]
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live participant owns it
            os.close(fd)
            continue
        try:
            name = os.path.basename(base)
            for path in (base, base + "_sl", f"/dev/shm/sem.{name}_mutex", lock_path):
                try:
                    os.unlink(path)
                    removed += 1
                except FileNotFoundError:
                    pass
        finally:
            os.close(fd)
    return removed


MAX_DOMAIN_ID = 232  # Fast DDS computes UDP ports from the domain id; above this they overflow
EXIT_CANNOT_START_ROS = 2  # dfer node's exit status when ROS itself cannot start (the reason is on stderr)


def installed_rmw_implementations(environ: Optional[dict] = None) -> list[str]:
    """The rmw implementations installed where this process looks for ROS packages: the ament index's
    ``rmw_typesupport`` resources (each rmw package registers one) under ``AMENT_PREFIX_PATH`` and this
    interpreter's prefix (a virtual environment built from the ROS wheels), less ``rmw_implementation``
    (the loader that picks one, not an implementation). Read from the folders: nothing of ROS is imported."""
    env = os.environ if environ is None else environ
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    names = set()
    for prefix in prefixes:
        folder = Path(prefix) / "share" / "ament_index" / "resource_index" / "rmw_typesupport"
        try:
            names.update(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
        except OSError:  # no such folder under this prefix
            continue
    names.discard("rmw_implementation")
    return sorted(names)


def rmw_problem(environ: Optional[dict] = None) -> str:
    """Why ``RMW_IMPLEMENTATION`` (or ``RCL_ASSERT_RMW_ID_MATCHES``) cannot work ('' when it can).

    rcl checks these variables in a constructor of its shared library, so importing rclpy with a name that
    is not installed ends the process from native code (exit 102, before any Python code can react); this
    reads the same variables against the installed implementations first. When no implementation can be
    found at all (an unusual layout), it says nothing and leaves the verdict to rcl."""
    env = os.environ if environ is None else environ
    wanted = {var: env.get(var, "").strip() for var in ("RMW_IMPLEMENTATION", "RCL_ASSERT_RMW_ID_MATCHES")}
    wanted = {var: value for var, value in wanted.items() if value}
    if not wanted:
        return ""
    if len(set(wanted.values())) > 1:
        return ("RMW_IMPLEMENTATION={RMW_IMPLEMENTATION!r} and RCL_ASSERT_RMW_ID_MATCHES={RCL_ASSERT_RMW_ID_MATCHES!r}"
                " differ; rcl refuses to start with both set to different values".format(**wanted))
    installed = installed_rmw_implementations(env)
    for var, value in wanted.items():
        if installed and value not in installed:
            return (f"{var}={value!r} is not an installed rmw implementation (installed: {', '.join(installed)}); "
                    f"unset it or set it to one of those")
    return ""


def environment_problem(environ: Optional[dict] = None) -> str:
    """Why the ROS environment cannot work ('' when it can), checked before rclpy is imported.

    rcl and Fast DDS report a bad ``ROS_DOMAIN_ID`` with a traceback (not a number) or end the process
    from native code (a number whose ports overflow), and an rmw that is not installed ends it on
    ``import rclpy`` (``rmw_problem``); the node checks first and exits with this reason
    (``EXIT_CANNOT_START_ROS``).
    """
    env = os.environ if environ is None else environ
    value = env.get("ROS_DOMAIN_ID", "")
    if value.strip():
        if not value.strip().isdigit():
            return f"ROS_DOMAIN_ID={value!r} is not a whole number (0 to {MAX_DOMAIN_ID})"
        if int(value) > MAX_DOMAIN_ID:
            return f"ROS_DOMAIN_ID={value} is above {MAX_DOMAIN_ID}: Fast DDS cannot compute its ports"
    return rmw_problem(env)
