"""Environment for every ROS process the project starts: DDS stays on this host.

Imported by tests, benchmarks and the demo before any rclpy import (it does not import rclpy itself).
``ROS_LOCALHOST_ONLY`` is not enough (ignored on newer distros), so this sets the discovery range, the
project's shared-memory-only Fast DDS profile under both variable names (Fast DDS 2 and 3), a log
folder inside the build tree and a private domain id.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Optional

from dfer_ros.assets import REPO_ROOT

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


def pick_domain_id(seed: Optional[int] = None) -> int:
    """A domain id in 1..100 derived from the process id, so parallel test runs do not meet."""
    return 1 + ((os.getpid() if seed is None else seed) % 100)


def local_ros_env(domain_id: Optional[int] = None, log_dir: Optional[Path] = None,
                  base: Optional[dict] = None) -> dict:
    """A copy of ``base`` (default os.environ) with the host-local ROS settings applied."""
    env = dict(os.environ if base is None else base)
    profile = str(fastdds_profile())
    env.update({
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOCALHOST_ONLY": "1",  # honoured by older distros; harmless elsewhere
        "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "ROS_DOMAIN_ID": str(pick_domain_id() if domain_id is None else domain_id),
        "ROS_LOG_DIR": str(log_dir or (REPO_ROOT / "build" / "ros_log")),
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("ROS_STATIC_PEERS", None)
    return env


def apply_local_ros_env(domain_id: Optional[int] = None, log_dir: Optional[Path] = None) -> dict:
    """Apply ``local_ros_env`` to this process (call before importing rclpy); returns what was set."""
    env = local_ros_env(domain_id, log_dir)
    Path(env["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def clean_shared_memory(owner_pids: Optional[set[int]] = None) -> int:
    """Remove Fast DDS shared-memory files left by processes that died (e.g. killed with -9).

    Fast DDS names its segments and port files ``/dev/shm/fastrtps_*`` / ``fastdds_*``; a segment whose
    lock files are no longer held is stale. Only files not opened by any live process are removed.
    Returns the number of files removed.
    """
    removed = 0
    open_files = _files_open_by_live_processes()
    for path in glob.glob("/dev/shm/fastrtps_*") + glob.glob("/dev/shm/fastdds_*") + glob.glob("/dev/shm/sem.fastrtps_*"):
        if path in open_files:
            continue
        try:
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed


def _files_open_by_live_processes() -> set[str]:
    held: set[str] = set()
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if target.startswith("/dev/shm/"):
                    held.add(target)
        except OSError:
            continue
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as handle:
                for line in handle:
                    if "/dev/shm/" in line:
                        held.add(line.split(None, 5)[-1].strip())
        except OSError:
            continue
    return held
