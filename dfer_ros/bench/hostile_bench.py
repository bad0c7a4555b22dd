"""Hostile-input measurements of dfer_node that need real processes and timing (so: benchmarks, not tests).

  startup_signals   SIGINT sent ``delay`` seconds after starting ``dfer-node`` (the console script, with the
                    ROS wheels' start-up re-exec: ``_ROS_WHEELS_BOOTSTRAP_COMPLETE`` removed from the
                    environment), several trials per delay: how each run ended (exit code, a traceback in its
                    output, or "ignored": still running 30 s later).
  oversized_images  a node fed 10 small frames, then each oversized bgr8 image followed by 10 small frames:
                    whether each oversized image reached the callback (``received`` grew) and the node's RSS
                    after it, relative to before the first one.

    dfer bench --sections startup_signals oversized_images --out out/hostile.json

Run inside a loopback-only network namespace (``unshare -rn``) or with the project's host-local DDS settings
(``ros.environment``, applied here). Not a test: it prints and returns numbers (docs/hostile_inputs.md).
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from dfer_ros.assets import REPO_ROOT
from dfer_ros.bench.soak_bench import rss_mb, rss_parts_mb

SMALL = (400, 300)


def _node_env(domain_id: Optional[int] = None, overrides: Optional[dict] = None) -> dict:
    from dfer_ros.ros.environment import local_ros_env, pick_domain_id

    env = local_ros_env(domain_id=domain_id or pick_domain_id(), log_dir=REPO_ROOT / "build" / "ros_log" / "hostile")
    env.update(overrides or {})
    return env


def startup_signals(delays: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2), trials: int = 5,
                    executable: Optional[str] = None, progress: Callable[[str], None] = print) -> dict:
    """{delay: {outcome: count}}; an outcome is the exit code, '+traceback' when the output had one, or
    'ignored' when the node still ran 30 s after the SIGINT."""
    exe = executable or str(Path(sys.executable).parent / "dfer-node")
    env = {k: v for k, v in _node_env().items() if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")}
    out: dict = {}
    for delay in delays:
        outcomes: collections.Counter = collections.Counter()
        for trial in range(trials):
            proc = subprocess.Popen([exe, "--ros-args", "-r", f"__ns:=/hostile_sig{trial}"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            try:
                text, _ = proc.communicate(timeout=30)
                code = str(proc.returncode)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                text, _ = proc.communicate(timeout=30)
                code = "ignored"
            outcomes[code + ("+traceback" if b"Traceback" in text or b"KeyboardInterrupt" in text else "")] += 1
        out[str(delay)] = dict(outcomes)
        progress(f"  SIGINT after {delay} s: {dict(outcomes)}")
    return out


DYNAMIC_READERS = """  <data_reader profile_name="dfer_dynamic_reader" is_default_profile="true">
    <historyMemoryPolicy>DYNAMIC</historyMemoryPolicy>
  </data_reader>
</profiles>"""


def dynamic_reader_env(folder: Path) -> dict:
    """Environment for the project's Fast DDS profile plus readers that free each sample once taken (a copy
    of the profile written to ``folder``); rmw_fastrtps honours the reader policy only with
    ``RMW_FASTRTPS_USE_QOS_FROM_XML=1``."""
    from dfer_ros.ros.environment import fastdds_profile

    path = Path(folder) / "fastdds_dynamic_readers.xml"
    path.write_text(fastdds_profile().read_text().replace("</profiles>", DYNAMIC_READERS))
    return {"FASTRTPS_DEFAULT_PROFILES_FILE": str(path), "FASTDDS_DEFAULT_PROFILES_FILE": str(path),
            "RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}


def oversized_images(sizes: Sequence[tuple[int, int]] = ((4000, 4000), (4000, 4000), (8000, 8000)),
                     reliability: str = "reliable", env_overrides: Optional[dict] = None,
                     progress: Callable[[str], None] = print) -> dict:
    """Rows of (size, reached the callback, node RSS MB relative to before the first oversized image)."""
    env = _node_env(overrides=env_overrides)
    os.environ.update(env)  # this process talks to the node: the same DDS settings (before rclpy starts)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dfer_ros.ros.conversions import array_to_image
    from dfer_ros.ros.diagnostics import diagnostic_values
    from dfer_ros.ros.processes import start_python, stop
    from dfer_ros.ros.session import ros_session

    log_path = REPO_ROOT / "build" / "ros_log" / "hostile" / "oversized_node.out"
    proc = start_python(["-m", "dfer_ros.ros.node_entry", "--ros-args", "-r", "__ns:=/hostile_big",
                         "-p", f"image_qos.reliability:={reliability}", "-p", "diagnostics_period:=0.3"],
                        env, log_path, cwd=REPO_ROOT)
    rows = []
    try:
        with ros_session([]):
            node = rclpy.create_node("hostile_big_probe")
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                             else ReliabilityPolicy.BEST_EFFORT)
            pub = node.create_publisher(Image, "/hostile_big/image", qos)
            diags: list = []
            node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(diagnostic_values(m))
                                     if m.status and m.status[0].name.startswith("/hostile_big/") else None, 10)

            def spin(condition, seconds):
                end = time.monotonic() + seconds
                while time.monotonic() < end and not condition():
                    if proc.poll() is not None:
                        raise RuntimeError(f"dfer_node exited with {proc.returncode}; see {log_path}")
                    rclpy.spin_once(node, timeout_sec=0.05)
                return condition()

            def received() -> int:
                return int(diags[-1]["received"]) if diags else 0

            def renewals() -> int:
                return int(diags[-1].get("image_reader_renewals", 0)) if diags else 0

            def small_frames(first_sec: int):
                """10 small frames, then more until one reaches the callback after the last diagnostics (the
                node's image reader, when it re-creates it after an oversized image, is matched again)."""
                frame = np.full((SMALL[1], SMALL[0], 3), 100, np.uint8)

                def send(sec: int):
                    msg = array_to_image(frame, "bgr8")
                    msg.header.stamp.sec = sec
                    pub.publish(msg)
                    spin(lambda: False, 0.1)

                for i in range(10):
                    send(first_sec + i)
                spin(lambda: False, 1.5)
                seen = received()
                for i in range(10, 90):
                    if received() > seen:
                        break
                    send(first_sec + i)
                spin(lambda: False, 1.0)

            if not spin(lambda: diags and diags[-1].get("state") == "active" and pub.get_subscription_count(), 180):
                raise RuntimeError(f"dfer_node did not become active; see {log_path}")
            small_frames(1000)
            base = rss_mb(proc.pid)
            base_anon, _, base_shmem = rss_parts_mb(proc.pid)
            for k, (width, height) in enumerate(sizes):
                before = received()
                msg = array_to_image(np.zeros((height, width, 3), np.uint8), "bgr8")
                msg.header.stamp.sec = 2000 + k
                pub.publish(msg)
                del msg
                reached = spin(lambda: received() > before, 20.0)
                small_frames(3000 + 100 * k)
                anon, _, shmem = rss_parts_mb(proc.pid)
                rows.append({"size": f"{width}x{height}", "reached_callback": reached,
                             "rss_growth_mb": round(rss_mb(proc.pid) - base, 1),
                             "anon_growth_mb": round(anon - base_anon, 1),
                             "shmem_growth_mb": round(shmem - base_shmem, 1),
                             "image_reader_renewals": renewals(),
                             "bad_image_reasons": diags[-1].get("bad_image_reasons", "")})
                progress(f"  {width}x{height} ({reliability}): reached the callback {reached}, node RSS "
                         f"{rows[-1]['rss_growth_mb']:+.1f} MB since before the first oversized image (anonymous "
                         f"{rows[-1]['anon_growth_mb']:+.1f}, shared memory {rows[-1]['shmem_growth_mb']:+.1f}), "
                         f"image reader renewals {rows[-1]['image_reader_renewals']}")
            node.destroy_node()
    finally:
        stop(proc)
    return {"reliability": reliability, "env_overrides": env_overrides or {}, "rows": rows}
