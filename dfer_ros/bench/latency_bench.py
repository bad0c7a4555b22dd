"""End-to-end latency of dfer_node: image stamp -> emotion message received in another process.

This process publishes 640x480 bgr8 frames of the real face video (upscaled cap12) at 30 Hz, stamped with
the wall clock at publication, and receives ``faces/affect`` from ``dfer_node`` running as a subprocess
(default model, onnxruntime, host-local DDS profile). Latency per result = receive time - source stamp.
The node keeps only the newest frame, so under load some frames are skipped; the report gives both the
latency percentiles of the results and the fraction of frames that got one.

    dfer bench latency --out out/latency.json [--seconds 20] [--rate 30]

Not a test: it prints and writes numbers (target on the robot: p99 <= 50 ms at 30 Hz).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dfer_ros.assets import REPO_ROOT
from dfer_ros.ros.environment import apply_local_ros_env, pick_domain_id
from dfer_ros.ros.processes import start_node, stop


def _frames(width: int, height: int, count: int = 200, faces: int = 1) -> list[np.ndarray]:
    """``count`` frames of the webcam video at ``width`` x ``height``; ``faces`` > 1: a square grid of copies, each
    later in the video than the one before it (4 faces: 2x2; 25 faces: 5x5); 0: an empty room, the video's
    background left of the person (a map and a lamp, with the camera's own noise), mirrored side by side."""
    import cv2

    from dfer_ros import assets

    side = max(1, int(round(faces ** 0.5)))
    capture = cv2.VideoCapture(str(assets.sample_video()))
    source = []
    while len(source) < count + 37 * (side * side - 1):
        ok, frame = capture.read()
        if not ok:
            break
        source.append(frame)
    capture.release()
    if faces == 0:
        rooms = []
        for frame in source[:count]:
            strip = frame[:, : frame.shape[1] * 4 // 25]  # x < 64 of 400: no part of the person in any frame
            rooms.append(np.hstack([strip, strip[:, ::-1], strip, strip[:, ::-1]]))
        return [cv2.resize(room, (width, height), interpolation=cv2.INTER_LINEAR) for room in rooms]
    if side == 1:
        return [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in source[:count]]
    cell_w, cell_h = width // side, height // side
    frames = []
    for k in range(count):
        canvas = np.full((height, width, 3), 40, np.uint8)
        for i in range(side * side):
            r, c = divmod(i, side)
            tile = cv2.resize(source[(k + 37 * i) % len(source)], (cell_w, cell_h), interpolation=cv2.INTER_AREA)
            canvas[r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w] = tile
        frames.append(canvas)
    return frames


def busy_competitors(count: int) -> list:
    """``count`` processes that each keep one core busy (a robot's other work: navigation, SLAM, speech)."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def run(out: Union[str, Path], seconds: float = 20.0, warmup: float = 3.0, rate: float = 30.0, width: int = 640,
        height: int = 480, backend: str = "onnxruntime", model: str = "default", checkpoint: Optional[str] = None,
        reliability: str = "best_effort", node_params: Sequence[str] = (), faces: int = 1,
        competitors: int = 0, domain_id: Optional[int] = None) -> dict:
    """Start the node, publish for ``warmup`` + ``seconds``, write the report JSON to ``out`` and print a
    summary line; returns the report. ``node_params``: extra ``NAME:=VALUE`` node parameters. ``faces``: 1, or a
    square number of faces in a grid. ``competitors``: busy processes beside the node while it runs (one per core
    is a loaded robot). The report carries the node's CPU (share of one core, per thread name) over the measured
    seconds and the expression / action-unit estimate ages of the faces it published. ``domain_id``: the ROS domain
    (default: a free one), for a process beside the run (a subscriber) to join; ``window_monotonic`` in the report
    is the measured interval on ``time.monotonic``."""
    from dfer_ros.bench.process_cpu import process_cpu, share_of_core, thread_cpu

    log_dir = REPO_ROOT / "build" / "ros_log" / "bench"

    env = apply_local_ros_env(domain_id=pick_domain_id() if domain_id is None else domain_id, log_dir=log_dir)
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds
    from dfer_ros.ros.node_listener import NodeListener
    from dfer_ros.ros.session import ros_session

    frames = _frames(width, height, faces=faces)
    node_log = log_dir / "dfer_node.out"
    params = {"model": model, "backend": backend, "image_qos.reliability": reliability}
    if checkpoint:
        params["checkpoint"] = checkpoint
    node_proc = start_node(env, node_log, cwd=REPO_ROOT, namespace="/bench", params=params,
                           extra=[item for param in list(node_params) for item in ("-p", param)])
    received: dict[float, float] = {}
    faces_seen = [0]
    diag: dict[str, str] = {}
    processing_ms: list[float] = []  # the node's pipeline time per diagnostics period, while measuring
    node_latency_ms: list[float] = []  # the node's stamp -> published time per diagnostics period
    work: dict[str, list[float]] = {}  # the node's work per image (``*_per_image`` diagnostics) per period
    measuring = [False]
    expr_ages: list[float] = []
    au_ages: list[float] = []
    face_counts: list[int] = []
    cpu_marks: dict[str, tuple] = {}
    report = {}
    busy = []
    try:
        with ros_session([]):
            node = rclpy.create_node("dfer_latency_bench")
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            pub = node.create_publisher(Image, "/bench/image", reliable)

            def on_affect(msg):
                received[stamp_to_seconds(msg.header.stamp)] = time.time()
                faces_seen[0] += bool(msg.faces)
                if measuring[0]:
                    face_counts.append(len(msg.faces))
                    expr_ages.extend(f.expression.estimate_age for f in msg.faces if f.expression.estimate_age >= 0)
                    au_ages.extend(f.action_units.estimate_age for f in msg.faces if f.action_units.estimate_age >= 0)

            def on_diagnostics(values):  # percentiles are absent from an idle period
                diag.update(values)
                value = float(values.get("processing_ms_p50", "nan"))
                published = float(values.get("latency_ms_p50", "nan"))
                if measuring[0] and np.isfinite(value):
                    processing_ms.append(value)
                    node_latency_ms.append(published)
                    for key, per_image in values.items():
                        if key.endswith("_per_image"):
                            work.setdefault(key[: -len("_per_image")], []).append(float(per_image))

            NodeListener(node, "/bench", on_affect, on_diagnostics, depth=10)
            deadline = time.monotonic() + 120
            while not (diag.get("state") == "active" and pub.get_subscription_count() >= 1):
                if node_proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dfer_node did not become active:\n{node_log.read_text(errors='replace')[-3000:]}")
                rclpy.spin_once(node, timeout_sec=0.1)
            print(f"bench: node active ({diag.get('model')}); publishing {width}x{height} at {rate} Hz "
                  f"for {warmup:.0f}+{seconds:.0f} s", flush=True)
            busy = busy_competitors(competitors)
            period = 1.0 / rate
            t0 = time.monotonic()
            sent: list[tuple[float, bool]] = []  # (stamp, measured)
            i = 0
            while True:
                target = t0 + i * period
                elapsed = time.monotonic() - t0
                if elapsed > warmup + seconds:
                    break
                while time.monotonic() < target:
                    rclpy.spin_once(node, timeout_sec=max(0.0, min(0.005, target - time.monotonic())))
                msg = array_to_image(frames[i % len(frames)], "bgr8")
                stamp = time.time()
                sec = int(stamp)
                msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((stamp - sec) * 1e9)
                msg.header.frame_id = "bench_camera"
                pub.publish(msg)
                if elapsed >= warmup and not measuring[0]:
                    cpu_marks["start"] = (time.monotonic(), process_cpu(node_proc.pid), thread_cpu(node_proc.pid))
                measuring[0] = elapsed >= warmup
                sent.append((stamp_to_seconds(msg.header.stamp), measuring[0]))
                i += 1
            cpu_marks["end"] = (time.monotonic(), process_cpu(node_proc.pid), thread_cpu(node_proc.pid))
            drain = time.monotonic() + 2.0
            while time.monotonic() < drain:
                rclpy.spin_once(node, timeout_sec=0.05)
            measured = [s for s, m in sent if m]
            lat = np.array([(received[s] - s) * 1000.0 for s in measured if s in received])
            (w0, c0, t0_threads), (w1, c1, t1_threads) = cpu_marks["start"], cpu_marks["end"]
            report = {
                "what": "image stamp -> FaceAffectArray received in another process",
                "resolution": f"{width}x{height}", "rate_hz": rate, "seconds": seconds,
                "model": diag.get("model"), "backend": diag.get("backend"), "image_qos": reliability,
                "node_params": list(node_params),
                "dds_profile": env["FASTRTPS_DEFAULT_PROFILES_FILE"],
                "frames_sent": len(measured), "results": int(lat.size),
                "result_fraction": round(lat.size / max(1, len(measured)), 3),
                "results_with_faces": faces_seen[0],
                "latency_ms": {k: round(float(v), 2) for k, v in (
                    ("p50", np.percentile(lat, 50)), ("p90", np.percentile(lat, 90)), ("p99", np.percentile(lat, 99)),
                    ("mean", lat.mean()), ("max", lat.max()))} if lat.size else {},
                "node_processing_ms_p50": round(float(np.median(processing_ms)), 2) if processing_ms else None,
                "node_stamp_to_publish_ms_p50": round(float(np.median(node_latency_ms)), 2) if node_latency_ms else None,
                "node_dropped_stale": diag.get("dropped_stale"),
                "node_work_per_image": {k: round(float(np.mean(v)), 3) for k, v in sorted(work.items())},
                "faces": faces, "competitors": competitors, "load_average": round(os.getloadavg()[0], 2),
                "output_hz": round(lat.size / seconds, 2),
                "faces_per_result": round(float(np.mean(face_counts)), 2) if face_counts else 0.0,
                "node_cpu_share_of_core": round((c1 - c0) / (w1 - w0), 3),
                "node_cpu_by_thread": share_of_core(t0_threads, t1_threads, w1 - w0),
                "window_monotonic": [round(w0, 4), round(w1, 4)],
                "expression_age_s": {"mean": round(float(np.mean(expr_ages)), 3),
                                     "max": round(float(np.max(expr_ages)), 3)} if expr_ages else {},
                "action_units_age_s": {"mean": round(float(np.mean(au_ages)), 3),
                                       "max": round(float(np.max(au_ages)), 3)} if au_ages else {},
                "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                         "python": platform.python_version()},
                "target_p99_ms": 50.0,
            }
            node.destroy_node()
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
        stop(node_proc)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    lat_ms = report.get("latency_ms", {})
    print(f"bench: {report.get('results')}/{report.get('frames_sent')} frames got a result "
          f"({report.get('result_fraction')}); latency ms p50 {lat_ms.get('p50')} p90 {lat_ms.get('p90')} "
          f"p99 {lat_ms.get('p99')} max {lat_ms.get('max')}; node processing p50 {report.get('node_processing_ms_p50')} "
          f"ms, stamp->published in the node p50 {report.get('node_stamp_to_publish_ms_p50')} ms; node CPU "
          f"{report.get('node_cpu_share_of_core')} of a core; expression age {report.get('expression_age_s')} s; "
          f"work per image {report.get('node_work_per_image')}; wrote {out}", flush=True)
    return report


if __name__ == "__main__":  # the command line is dfer bench latency (dfer_ros/cli/bench_latency.py)
    from dfer_ros.commands import exec_cli

    exec_cli("bench_latency", "dfer bench latency")
