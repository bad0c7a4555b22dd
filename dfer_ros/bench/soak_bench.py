"""Soak of dfer_node: node RSS over tens of thousands of frames with faces entering and leaving.

A robot runs the node all day, so memory must stay flat: per-track state (buffers, smoothing, ids),
detector calls and message traffic must not grow with the number of frames or of faces seen. This runs
``dfer_node`` as a real subprocess (default settings, host-local DDS) and feeds it 640x480 frames over
real DDS in lock-step (each frame's result is awaited, so every frame is processed). Three slots each
show a real face from the London set (CC BY 4.0, see ``crowd_bench.ATTRIBUTION``) for 1-4 s of stamp
time, then stay empty for 1.3-3 s (longer than tracking.lost_seconds, so each face is a new track),
then show the next person: about one new face every 1.6 s, so
hundreds of tracks start and end over a run. Stamps advance at 30 Hz.

Node RSS (``/proc/<pid>/status`` VmRSS) is sampled every ``sample_every`` frames; the report prints it
at the start, every 5,000 frames and at the end, and gives the least-squares slope in MB per 1,000
frames after ``warmup`` frames (target: under 0.2).

    dfer bench soak --frames 30000 --out out/soak.json   (or: dfer bench --sections soak --soak-frames N,
    make bench BENCH_ARGS="--sections soak")

``run_offline`` (``dfer bench soak --offline``) feeds the same frames to an in-process pipeline, as
``dfer eval`` does with a long video, and samples the tool's own RSS.

Not a test: it prints and writes numbers.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dfer_ros.assets import REPO_ROOT

log = logging.getLogger(__name__)

WIDTH, HEIGHT, SIDE = 640, 480, 150
SLOTS = ((40, 60), (245, 200), (450, 40))  # top-left corners of the three face slots
RATE_HZ = 30.0
PRINT_EVERY = 5000
FLOOR_EVERY = 10  # frames between the node RSS reads behind rss_floor_mb
HEAP_KEYS = ("heap_in_use_mb", "python_blocks", "anon_after_trim_mb")  # the node's /diagnostics after each trim


@dataclass
class SoakReport:
    frames: int
    processed: int
    missed: int  # frames whose result did not arrive within the timeout
    faces_shown: int  # appearances of a face in a slot (each one a new track)
    face_ids: int  # distinct face ids in the node's results
    mean_faces_per_frame: float
    seconds: float
    warmup: int
    rss_mb: list[tuple[int, float]] = field(default_factory=list)  # (frame, node RSS MB)
    slope_mb_per_1000: Optional[float] = None
    growth_mb_after_warmup: Optional[float] = None
    attribution: str = ""
    # (frame, anonymous MB, file-backed MB, shared-memory MB): the parts of each RSS sample. A leak grows the
    # anonymous part; file-backed pages (the libraries' code) and shared memory (DDS segments) come and go
    # with the kernel's page reclaim and the transport's use of its segments.
    rss_parts_mb: list[tuple[int, float, float, float]] = field(default_factory=list)
    anon_slope_mb_per_1000: Optional[float] = None
    competitors: int = 0  # busy processes beside the node (one per core is a loaded robot)
    # (frame, least node RSS MB read every FLOOR_EVERY frames since the previous sample): the node gives its
    # heap's free pages back every few seconds (ros/memory.py trim_free_heap), so RSS saws between the memory
    # it holds and that plus the freed pages the next frames touch again; the floor follows what it holds.
    rss_floor_mb: list[tuple[int, float]] = field(default_factory=list)
    floor_slope_mb_per_1000: Optional[float] = None
    # (frame, heap in use MB, live pymalloc blocks, anonymous RSS MB) from the node's latest /diagnostics at each
    # sample, all read right after the node's last heap trim: what malloc and pymalloc hold
    # (ros/memory.heap_in_use_bytes), free of RSS's saw and of holes, so a leak shows there alone; and the RSS
    # without its saw (what the heap holds plus what it cannot give back).
    heap_in_use: list[tuple[int, float, int, float]] = field(default_factory=list)
    heap_slope_mb_per_1000: Optional[float] = None
    python_blocks_slope_per_1000: Optional[float] = None
    anon_after_trim_slope_mb_per_1000: Optional[float] = None
    cpu_ms_per_frame: Optional[float] = None  # offline only: this process's CPU time (user + system) per frame
    trim_every: int = 0  # offline only: trim_free_heap every this many frames (0: never)


class ChurnScenes:
    """Frame ``i`` of a deterministic scene: three slots, each alternating between a face and nothing."""

    def __init__(self, tiles: list[tuple[np.ndarray, np.ndarray]], seed: int = 0):
        self.tiles = tiles
        self.rng = np.random.default_rng(seed)
        self.background = np.full((HEIGHT, WIDTH, 3), 118, np.uint8)
        self._schedule = [self._segments() for _ in SLOTS]
        self.faces_shown = 0
        self._next_person = 0

    def _segments(self):
        """Per slot: a generator of (person or None, frames) segments."""
        while True:
            yield None, int(self.rng.integers(40, 90))  # longer than tracking.lost_seconds: the next face is a new track
            person = self._next_person
            self._next_person += 1
            yield person, int(self.rng.integers(30, 120))

    def frames(self, count: int):
        state = [[None, 0] for _ in SLOTS]  # per slot: person, frames left
        for index in range(count):
            canvas = self.background.copy()
            for slot, (x, y) in enumerate(SLOTS):
                if state[slot][1] == 0:
                    state[slot][0], state[slot][1] = next(self._schedule[slot])
                    self.faces_shown += state[slot][0] is not None
                person = state[slot][0]
                state[slot][1] -= 1
                if person is None:
                    continue
                neutral, happy = self.tiles[person % len(self.tiles)]
                tile = happy if (index // 45) % 2 else neutral
                dx, dy = int(3 * np.sin(index / 7.0 + slot)), int(2 * np.cos(index / 9.0 + slot))  # small motion
                canvas[y + dy:y + dy + SIDE, x + dx:x + dx + SIDE] = tile
            yield canvas


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def rss_parts_mb(pid: int) -> tuple[float, float, float]:
    """(anonymous, file-backed, shared-memory) MB of a process's RSS (``/proc/<pid>/status``)."""
    parts = {}
    for line in open(f"/proc/{pid}/status"):
        key = line.split(":", 1)[0]
        if key in ("RssAnon", "RssFile", "RssShmem"):
            parts[key] = round(int(line.split()[1]) / 1024.0, 1)
    return parts["RssAnon"], parts["RssFile"], parts["RssShmem"]


def slope_per_1000(samples: list[tuple[int, float]], warmup: int) -> tuple[Optional[float], Optional[float]]:
    """(least-squares MB per 1,000 frames, last - first MB) over the samples at or after ``warmup``."""
    points = [(f, mb) for f, mb in samples if f >= warmup]
    if len(points) < 2:
        return None, None
    x = np.array([f for f, _ in points], np.float64)
    y = np.array([mb for _, mb in points], np.float64)
    return float(np.polyfit(x, y, 1)[0] * 1000.0), float(y[-1] - y[0])


def rounded_slope(samples, warmup: int, digits: int = 3) -> Optional[float]:
    """``slope_per_1000``'s slope of (frame, value) ``samples``, rounded for the report (None: too few samples)."""
    slope, _ = slope_per_1000([(f, float(v)) for f, v in samples], warmup)
    return None if slope is None else round(slope, digits)


def run(frames: int = 30000, warmup: int = 2000, sample_every: int = 500, timeout: float = 20.0,
        node_params: Optional[dict] = None, log_dir: Optional[Path] = None, people: int = 102,
        env: Optional[dict] = None, progress: Callable[[str], None] = print, progress_bar: bool = True,
        competitors: int = 0) -> SoakReport:
    """Start a node, feed ``frames`` churn frames in lock-step, sample its RSS; stop it (SIGINT).

    ``people``: how many London-set faces take turns in the slots. ``env``: a ROS environment the caller
    already applied to this process (tests); default: a host-local one with a free domain id.
    ``competitors``: busy processes (``latency_bench.busy_competitors``) running beside the node throughout."""
    from dfer_ros.bench.crowd_bench import ATTRIBUTION, face_tiles
    from dfer_ros.ros.environment import apply_local_ros_env, pick_domain_id
    from dfer_ros.ros.processes import start_node, stop

    log_dir = Path(log_dir or REPO_ROOT / "build" / "ros_log" / "soak")
    if env is None:
        env = apply_local_ros_env(domain_id=pick_domain_id(), log_dir=log_dir)
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from diagnostic_msgs.msg import DiagnosticArray

    from dfer_ros.msg import FaceAffectArray
    from dfer_ros.ros.conversions import array_to_image
    from dfer_ros.ros.diagnostics import diagnostic_values
    from dfer_ros.ros.session import ros_session

    warmup = min(warmup, max(0, frames - 2 * sample_every))
    scenes = ChurnScenes(face_tiles(people, SIDE))
    params = {"image_qos.reliability": "reliable", **(node_params or {})}
    proc = start_node(env, log_dir / "dfer_node.out", cwd=REPO_ROOT, namespace="/soak", params=params)
    got: dict[int, int] = {}  # stamp (ns) -> faces in the result
    ids: set[str] = set()

    def on_affect(msg):
        got[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = len(msg.faces)
        ids.update(f.face_id for f in msg.faces)

    heap: dict[str, str] = {}  # the node's latest HEAP_KEYS values

    def on_diagnostics(msg):
        values = diagnostic_values(msg)
        heap.update({k: values[k] for k in HEAP_KEYS if k in values})

    report = SoakReport(frames=frames, processed=0, missed=0, faces_shown=0, face_ids=0, mean_faces_per_frame=0.0,
                        seconds=0.0, warmup=warmup, attribution=ATTRIBUTION, competitors=competitors)
    busy: list = []
    try:
        with ros_session([]):
            node = rclpy.create_node("dfer_soak_bench")
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            pub = node.create_publisher(Image, "/soak/image", reliable)
            node.create_subscription(FaceAffectArray, "/soak/faces/affect", on_affect, reliable)
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)

            def spin_until(condition, seconds: float) -> bool:
                deadline = time.monotonic() + seconds
                while not condition():
                    if proc.poll() is not None:
                        raise RuntimeError(f"dfer_node exited with {proc.returncode}; see {log_dir / 'dfer_node.out'}")
                    if time.monotonic() > deadline:
                        return False
                    rclpy.spin_once(node, timeout_sec=0.01)
                return True

            if not spin_until(lambda: pub.get_subscription_count() >= 1 and "python_blocks" in heap and
                              node.count_publishers("/soak/faces/affect") >= 1, 180.0):
                raise RuntimeError("dfer_node did not subscribe and report its heap within 180 s")
            start_ns = int((time.time() - 7200.0) * 1e9)  # in the past of the wall clock, at 30 Hz
            if competitors:
                from dfer_ros.bench.latency_bench import busy_competitors

                busy = busy_competitors(competitors)
            bar = None
            if progress_bar:
                from tqdm import tqdm

                bar = tqdm(total=frames, desc="soak", unit="frame", mininterval=2.0)
            t0 = time.monotonic()
            faces_total = 0
            floor = float("inf")
            for index, frame in enumerate(scenes.frames(frames)):
                stamp_ns = start_ns + int(round(index * 1e9 / RATE_HZ))
                msg = array_to_image(frame, "bgr8")
                msg.header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
                msg.header.frame_id = "soak_camera"
                pub.publish(msg)
                if spin_until(lambda: stamp_ns in got, timeout):
                    report.processed += 1
                    faces_total += got.pop(stamp_ns)
                else:
                    report.missed += 1
                done = index + 1
                if done % FLOOR_EVERY == 0:
                    floor = min(floor, rss_mb(proc.pid))
                if index == 0 or done % sample_every == 0 or done == frames:
                    report.rss_mb.append((0 if index == 0 else done, round(rss_mb(proc.pid), 1)))
                    report.rss_parts_mb.append((report.rss_mb[-1][0], *rss_parts_mb(proc.pid)))
                    report.rss_floor_mb.append((report.rss_mb[-1][0], round(min(floor, report.rss_mb[-1][1]), 1)))
                    floor = float("inf")
                    if all(k in heap for k in HEAP_KEYS):
                        report.heap_in_use.append((report.rss_mb[-1][0], float(heap["heap_in_use_mb"]),
                                                   int(heap["python_blocks"]), float(heap["anon_after_trim_mb"])))
                    if index == 0 or done % PRINT_EVERY == 0 or done == frames:
                        anon, file_mb, shmem = report.rss_parts_mb[-1][1:]
                        progress(f"  frame {report.rss_mb[-1][0]:6d}: node RSS {report.rss_mb[-1][1]:.1f} MB "
                                 f"(anonymous {anon:.1f}, files {file_mb:.1f}, shared memory {shmem:.1f}), "
                                 f"{len(ids)} face ids so far")
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            report.seconds = round(time.monotonic() - t0, 1)
            report.faces_shown = scenes.faces_shown
            report.face_ids = len(ids)
            report.mean_faces_per_frame = round(faces_total / max(1, report.processed), 3)
            node.destroy_node()
    finally:
        for competitor in busy:
            competitor.kill()
            competitor.wait()
        code, killed = stop(proc)
        if killed or code != 0:
            log.warning("dfer_node exit code %s%s; log: %s", code, " (killed)" if killed else "", log_dir / "dfer_node.out")
    slope, growth = slope_per_1000(report.rss_mb, warmup)
    report.slope_mb_per_1000 = None if slope is None else round(slope, 3)
    report.growth_mb_after_warmup = None if growth is None else round(growth, 1)
    report.anon_slope_mb_per_1000 = rounded_slope([(f, anon) for f, anon, _, _ in report.rss_parts_mb], warmup)
    report.floor_slope_mb_per_1000 = rounded_slope(report.rss_floor_mb, warmup)
    report.heap_slope_mb_per_1000 = rounded_slope([(f, mb) for f, mb, _, _ in report.heap_in_use], warmup)
    report.anon_after_trim_slope_mb_per_1000 = rounded_slope([(f, mb) for f, _, _, mb in report.heap_in_use], warmup)
    report.python_blocks_slope_per_1000 = rounded_slope([(f, b) for f, _, b, _ in report.heap_in_use], warmup, 1)
    return report


def run_offline(frames: int = 30000, warmup: int = 2000, sample_every: int = 500, people: int = 102,
                model: str = "default", backend: str = "onnxruntime",
                progress: Callable[[str], None] = print, progress_bar: bool = True,
                trim_every: int = 0) -> SoakReport:
    """The same churn frames through an in-process ``PerceptionPipeline`` (what ``dfer eval`` runs on a long
    video), sampling this process's RSS: the offline tools' memory over a long run. Call it from a console
    script (``dfer bench soak --offline``): importing ``dfer_ros.cli`` caps the malloc arenas as the tools do."""
    import os

    from dfer_ros.bench.crowd_bench import ATTRIBUTION, face_tiles
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.perception.config import PipelineConfig

    warmup = min(warmup, max(0, frames - 2 * sample_every))
    scenes = ChurnScenes(face_tiles(people, SIDE))
    pipeline = build_pipeline(PipelineConfig(), model, backend)
    report = SoakReport(frames=frames, processed=0, missed=0, faces_shown=0, face_ids=0, mean_faces_per_frame=0.0,
                        seconds=0.0, warmup=warmup, attribution=ATTRIBUTION)
    ids: set[str] = set()
    faces_total = 0
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=frames, desc="offline soak", unit="frame", mininterval=2.0)
    from dfer_ros.ros.memory import trim_free_heap

    report.trim_every = trim_every
    t0 = time.monotonic()
    cpu0 = os.times()
    try:
        for index, frame in enumerate(scenes.frames(frames)):
            if trim_every and index and index % trim_every == 0:
                trim_free_heap()
            result = pipeline.process(frame, index / RATE_HZ)
            report.processed += not result.skipped_reason
            faces_total += len(result.faces)
            ids.update(f.face_id for f in result.faces)
            done = index + 1
            if index == 0 or done % sample_every == 0 or done == frames:
                report.rss_mb.append((0 if index == 0 else done, round(rss_mb(os.getpid()), 1)))
                report.rss_parts_mb.append((report.rss_mb[-1][0], *rss_parts_mb(os.getpid())))
                if index == 0 or done % PRINT_EVERY == 0 or done == frames:
                    progress(f"  frame {report.rss_mb[-1][0]:6d}: RSS {report.rss_mb[-1][1]:.1f} MB, "
                             f"{len(ids)} face ids so far")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        pipeline.close()
    cpu1 = os.times()
    report.cpu_ms_per_frame = round(1000.0 * (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / max(1, frames), 2)
    report.seconds = round(time.monotonic() - t0, 1)
    report.faces_shown = scenes.faces_shown
    report.face_ids = len(ids)
    report.mean_faces_per_frame = round(faces_total / max(1, report.processed), 3)
    slope, growth = slope_per_1000(report.rss_mb, warmup)
    report.slope_mb_per_1000 = None if slope is None else round(slope, 3)
    report.growth_mb_after_warmup = None if growth is None else round(growth, 1)
    report.anon_slope_mb_per_1000 = rounded_slope([(f, anon) for f, anon, _, _ in report.rss_parts_mb], warmup)
    return report


def summary_lines(report: SoakReport) -> list[str]:
    slope = "n/a" if report.slope_mb_per_1000 is None else f"{report.slope_mb_per_1000:.3f}"
    return [f"soak: {report.processed}/{report.frames} frames processed ({report.missed} missed) in {report.seconds} s, "
            f"{report.faces_shown} face appearances, {report.face_ids} face ids, "
            f"{report.mean_faces_per_frame} faces per frame",
            f"soak: RSS {report.rss_mb[0][1] if report.rss_mb else 'n/a'} MB at start -> "
            f"{report.rss_mb[-1][1] if report.rss_mb else 'n/a'} MB at the end; slope after frame {report.warmup}: "
            f"{slope} MB per 1,000 frames (target < 0.2), growth {report.growth_mb_after_warmup} MB",
            f"soak: anonymous memory slope after frame {report.warmup}: "
            f"{'n/a' if report.anon_slope_mb_per_1000 is None else f'{report.anon_slope_mb_per_1000:.3f}'} MB per "
            f"1,000 frames; {report.competitors} busy competing processes"] + (
            [f"soak: slope of the RSS floor (least RSS read every {FLOOR_EVERY} frames in each interval) after frame "
             f"{report.warmup}: {report.floor_slope_mb_per_1000:.3f} MB per 1,000 frames"]
            if report.floor_slope_mb_per_1000 is not None else []) + (
            [f"soak: heap in use after the node's trims {report.heap_in_use[0][1]:.1f} -> {report.heap_in_use[-1][1]:.1f}"
             f" MB, slope {report.heap_slope_mb_per_1000:.3f} MB per 1,000 frames; live Python blocks "
             f"{report.heap_in_use[0][2]} -> {report.heap_in_use[-1][2]}, slope {report.python_blocks_slope_per_1000}"
             f" per 1,000 frames; anonymous RSS after the trims {report.heap_in_use[0][3]:.1f} -> "
             f"{report.heap_in_use[-1][3]:.1f} MB, slope {report.anon_after_trim_slope_mb_per_1000:.3f} MB per 1,000 frames"]
            if report.heap_in_use and report.heap_slope_mb_per_1000 is not None else []) + (
            [f"soak: {report.cpu_ms_per_frame} ms of CPU (user + system) per frame"
             + (f", heap trimmed every {report.trim_every} frames" if report.trim_every else "")]
            if report.cpu_ms_per_frame is not None else [])

