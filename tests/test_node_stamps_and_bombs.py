"""dfer_node as a subprocess over real DDS, fed what real cameras and networks send: repeated stamps,
slightly reordered stamps, a compressed-image decompression bomb and a raw image above max_image_pixels.

Real frames of a face (cap12). Each step waits for its own result (or its count in the diagnostics), so
nothing depends on timing. Stamp handling is checked end to end: output keeps flowing with the same face
id, each event is counted in /diagnostics and logged through the ROS logger (it reaches /rosout).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from dfer_ros.msg import FaceAffectArray  # noqa: E402
from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds  # noqa: E402
from dfer_ros.ros.diagnostics import diagnostic_values  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from image_bombs import png_bomb  # noqa: E402
from ros_helpers import NodeProcessProbe, read_log, ros_process, sample_frames  # noqa: E402

NS = "/robot_day"
TIMEOUT = 60.0
MAX_PIXELS = 1_000_000  # above the 400x300 frames; a 1200x1000 raw image is oversized


def _time(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


class Probe(NodeProcessProbe):
    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.node = rclpy.create_node("robot_day_probe")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, f"{NS}/image", reliable)
        self.compressed = self.node.create_publisher(CompressedImage, f"{NS}/image/compressed", reliable)
        self.affect: list = []
        self.node.create_subscription(FaceAffectArray, f"{NS}/faces/affect", self.affect.append, reliable)
        self.diagnostics: list[dict] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.append(
            diagnostic_values(m)) if m.status and m.status[0].name.startswith(f"{NS}/dfer_node") else None, 50)
        self.rosout: list[str] = []
        self.node.create_subscription(Log, "/rosout", lambda m: self.rosout.append(m.msg)
                                      if m.name.endswith("dfer_node") else None, QoSProfile(depth=200))

    def publish(self, frame, stamp: float) -> None:
        msg = array_to_image(frame, "bgr8")
        msg.header.stamp = _time(stamp)
        self.pub.publish(msg)

    def process(self, frame, stamp: float):
        """Publish and wait for one more result carrying ``stamp``; returns it."""
        count = sum(1 for m in self.affect if stamp_to_seconds(m.header.stamp) == pytest.approx(stamp, abs=1e-6))
        self.publish(frame, stamp)
        self.wait(lambda: sum(1 for m in self.affect
                              if stamp_to_seconds(m.header.stamp) == pytest.approx(stamp, abs=1e-6)) > count,
                  f"a result for stamp {stamp}")
        return self.affect[-1]

    def counter(self, key: str) -> int:
        return int(self.diagnostics[-1].get(key, 0)) if self.diagnostics else 0


@pytest.fixture(scope="module")
def probe(ros_env, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("node") / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={NS}", "-p", "image_qos.reliability:=reliable",
            "-p", "image_qos.depth:=10", "-p", "diagnostics_period:=0.3", "-p", "warn_throttle_seconds:=0.0",
            "-p", "subscribe_compressed:=true", "-p", "with_action_units:=false",
            "-p", f"max_image_pixels:={MAX_PIXELS}"]
    with ros_session():
        with ros_process(args, ros_env, log_path) as proc:
            p = Probe(proc, log_path)
            p.wait(lambda: any(d.get("state") == "active" for d in p.diagnostics), "the node to become active", 120)
            p.wait(lambda: p.pub.get_subscription_count() >= 1 and p.compressed.get_subscription_count() >= 1,
                   "the node's image subscriptions")
            p.wait(lambda: p.node.count_publishers(f"{NS}/faces/affect") >= 1, "the affect publisher")
            yield p
            p.node.destroy_node()
        assert proc.returncode == 0, f"dfer_node exit code {proc.returncode} after SIGINT:\n{read_log(log_path)}"


@pytest.fixture(scope="module")
def frames():
    return sample_frames(40)


def test_identical_stamps_keep_output_flowing_and_are_counted(probe, frames):
    stamp = time.time() - 3000.0
    results = [probe.process(frame, stamp) for frame in frames[:12]]  # a driver that stamps every frame alike
    with_face = [m for m in results if m.faces]
    assert len(with_face) >= 8, "the face was lost under repeated stamps"
    assert len({f.face_id for m in with_face for f in m.faces}) == 1, "repeated stamps changed the face id"
    probe.wait(lambda: probe.counter("duplicate_stamp") >= 11, "11 duplicate stamps counted in /diagnostics")
    assert probe.counter("clock_jump_reset") == 0
    probe.wait(lambda: any("duplicate_stamp" in text for text in probe.rosout), "the stamp warning on /rosout")


def test_a_slightly_reordered_frame_is_dropped_and_counted_without_resetting_tracks(probe, frames):
    start = time.time() - 2000.0
    before_ids = {f.face_id for m in [probe.process(frames[i], start + 0.04 * i) for i in range(6)] for f in m.faces}
    assert len(before_ids) == 1
    late_before, resets_before = probe.counter("late_frame_dropped"), probe.counter("clock_jump_reset")
    newest = start + 0.04 * 5
    probe.publish(frames[6], newest - 0.01)  # 10 ms older than the previous frame: a reorder, not a new timeline
    probe.wait(lambda: probe.counter("late_frame_dropped") > late_before, "the late frame counted in /diagnostics")
    after = [probe.process(frames[7 + i], newest + 0.04 * (i + 1)) for i in range(6)]
    assert {f.face_id for m in after for f in m.faces} == before_ids, "a small reorder reset the tracks"
    assert not [m for m in probe.affect if stamp_to_seconds(m.header.stamp) == pytest.approx(newest - 0.01, abs=1e-6)]
    assert probe.counter("clock_jump_reset") == resets_before
    probe.wait(lambda: any("late_frame_dropped" in text for text in probe.rosout), "the late-frame warning on /rosout")


def test_a_real_jump_back_resets_and_is_counted(probe, frames):
    resets_before = probe.counter("clock_jump_reset")
    stamp = time.time() - 2500.0  # 500 s before the previous test's stamps: a bag loop
    result = probe.process(frames[0], stamp)
    assert result is not None
    probe.wait(lambda: probe.counter("clock_jump_reset") == resets_before + 1, "the reset counted in /diagnostics")


def test_png_bomb_on_image_compressed_is_rejected_without_decoding(probe, frames):
    bomb = png_bomb(16000, 16000)
    assert len(bomb) < 300_000
    pid = probe.proc.pid
    try:
        open(f"/proc/{pid}/clear_refs", "w").write("5")  # reset the peak-RSS mark, so VmHWM covers this test
        peak_field = "VmHWM"
    except OSError:
        peak_field = "VmRSS"
    rss_before = _rss_kib(pid)
    msg = CompressedImage(format="png", data=bomb)
    msg.header.stamp = _time(time.time() - 1000.0)
    probe.compressed.publish(msg)
    probe.wait(lambda: "too_large=" in probe.diagnostics[-1].get("bad_image_reasons", ""),
               "the bomb counted as too_large in /diagnostics")
    growth_mb = (_rss_kib(pid, peak_field) - rss_before) / 1024
    assert growth_mb < 50, f"node {peak_field} grew by {growth_mb:.0f} MB on a 16000x16000 PNG"
    assert "16000x16000" in read_log(probe.log_path) and "before decoding" in read_log(probe.log_path)
    good = probe.process(frames[20], time.time() - 999.0)  # the node goes on with the next image
    assert good.faces


def test_an_oversized_raw_image_is_rejected_and_the_image_reader_renewed(probe, frames):
    """The DDS reader's buffers grow to the largest sample and stay (docs/hostile_inputs.md): after rejecting
    an oversized raw image the node re-creates its image subscription, says so, and goes on with new images."""
    renewals, too_large = probe.counter("image_reader_renewals"), probe.counter("bad_images")
    msg = array_to_image(np.zeros((1000, 1200, 3), np.uint8), "bgr8")
    msg.header.stamp = _time(time.time() - 900.0)
    probe.pub.publish(msg)
    probe.wait(lambda: probe.counter("bad_images") > too_large and
               "too_large=" in probe.diagnostics[-1].get("bad_image_reasons", ""), "the raw image counted too_large")
    probe.wait(lambda: probe.counter("image_reader_renewals") == renewals + 1, "the image reader renewed")
    assert "1200x1000" in read_log(probe.log_path) and "image subscription re-created" in read_log(probe.log_path)
    stamp = time.time() - 899.0
    # images sent before the new reader is matched are missed: send until one is answered
    sent = [0]

    def answered() -> bool:
        if any(stamp_to_seconds(m.header.stamp) >= stamp for m in probe.affect):
            return True
        probe.publish(frames[21], stamp + 0.04 * sent[0])
        sent[0] += 1
        return False

    probe.wait(answered, "a result from the renewed image reader")
    assert probe.proc.poll() is None


def test_the_node_gives_free_heap_pages_back_every_period(probe):
    """The loaded soak grew by holes in glibc's arenas (docs/hostile_inputs.md): the node trims its heap every
    TRIM_HEAP_EVERY_S seconds, and /diagnostics counts it."""
    from dfer_ros.ros.memory import TRIM_HEAP_EVERY_S

    trims = probe.counter("heap_trims")
    probe.wait(lambda: probe.counter("heap_trims") >= trims + 2, "two more heap trims counted in /diagnostics",
               timeout=6 * TRIM_HEAP_EVERY_S)
    # and what the heap holds after the trim, for a soak to read without RSS's saw (bench/soak_bench.py)
    heap = probe.diagnostics[-1]
    assert 10.0 < float(heap["heap_in_use_mb"]) < 10_000.0, heap  # a loaded model's native buffers, not a stub
    assert int(heap["python_blocks"]) > 100_000, heap
    assert float(heap["heap_in_use_mb"]) < float(heap["anon_after_trim_mb"]) < 10_000.0, heap
