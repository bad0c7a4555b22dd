"""Re-identification through dfer_node over real DDS: person_id published, a returning face keeps it (with a
new face id), the forget services remove it; a corrupt gallery file is refused with the reason in diagnostics
(WARN) and the node runs with an empty gallery.

The node is a real subprocess; frames are the real face video (cap12); "the person leaves" is grey images
stamped far enough apart for the track to end (tracking.lost_seconds). Stamps are chosen by the test and
every wait is on a condition.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dfer_ros.msg import FaceAffectArray, TrackedFaces  # noqa: E402
from dfer_ros.ros.conversions import array_to_image, stamp_to_seconds  # noqa: E402
from dfer_ros.ros.diagnostics import diagnostic_values  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from dfer_ros.srv import ForgetAllPeople, ForgetPerson  # noqa: E402
from ros_helpers import NodeProcessProbe, read_log, ros_process, sample_frames  # noqa: E402

NS = "/reid_itest"
IMAGE = f"{NS}/camera/image"
TIMEOUT = 60.0
GREY = np.full((300, 400, 3), 128, np.uint8)


class Probe(NodeProcessProbe):
    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.node = rclpy.create_node("dfer_reid_probe")
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, IMAGE, reliable)
        self.affect: dict[float, FaceAffectArray] = {}
        self.tracked: dict[float, TrackedFaces] = {}
        self.subs = [
            self.node.create_subscription(FaceAffectArray, f"{NS}/faces/affect",
                                          lambda m: self.affect.__setitem__(stamp_to_seconds(m.header.stamp), m),
                                          reliable),
            self.node.create_subscription(TrackedFaces, f"{NS}/faces/tracked",
                                          lambda m: self.tracked.__setitem__(stamp_to_seconds(m.header.stamp), m),
                                          reliable)]
        self.diagnostics: list[dict[str, str]] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.forget_one = self.node.create_client(ForgetPerson, f"{NS}/dfer_node/forget_person")
        self.forget_all = self.node.create_client(ForgetAllPeople, f"{NS}/dfer_node/forget_all_people")
        self.stamp = time.time() - 3600.0

    def _on_diag(self, msg):
        if msg.status and msg.status[0].name.startswith(f"{NS}/dfer_node"):
            self.diagnostics.append({**diagnostic_values(msg), "level": int.from_bytes(msg.status[0].level, "little")
                                     if isinstance(msg.status[0].level, bytes) else int(msg.status[0].level)})

    def process(self, frame, step: float = 0.04):
        self.stamp = round(self.stamp + step, 6)
        msg = array_to_image(frame, "bgr8")
        sec = int(self.stamp)
        msg.header.stamp = Time(sec=sec, nanosec=int(round((self.stamp - sec) * 1e9)))
        stamp = self.stamp
        self.pub.publish(msg)
        self.wait(lambda: stamp in self.affect and stamp in self.tracked, f"results for stamp {stamp}")
        return self.affect[stamp], self.tracked[stamp]

    def call(self, client, request):
        self.wait(client.service_is_ready, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait(future.done, f"a response from {client.srv_name}")
        return future.result()


def faces_of(frames, probe) -> list[tuple[str, str]]:
    """(face_id, person_id) of the face in each frame processed."""
    out = []
    for frame in frames:
        affect, tracked = probe.process(frame)
        assert [f.face_id for f in affect.faces] == list(tracked.face_ids)
        assert [f.person_id for f in affect.faces] == list(tracked.person_ids)
        assert list(tracked.people_in_view) == sorted({p for p in tracked.person_ids if p})
        out.extend((f.face_id, f.person_id) for f in affect.faces)
    return out


@pytest.fixture(scope="module")
def probe(ros_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reid_node")
    gallery = folder / "people.json"
    gallery.write_text("{ this is not a gallery")
    log_path = folder / "dfer_node.log"
    args = ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={NS}", "-r", f"image:={IMAGE}",
            "-p", "image_qos.reliability:=reliable", "-p", "image_qos.depth:=10", "-p", "diagnostics_period:=0.5",
            "-p", f"reid.gallery_file:={gallery}"]
    with ros_session():
        with ros_process(args, ros_env, log_path) as proc:
            p = Probe(proc, log_path)
            p.gallery = gallery
            p.wait(lambda: any(d.get("state") == "active" for d in p.diagnostics), "the node to become active",
                   timeout=120)
            p.wait(lambda: p.pub.get_subscription_count() >= 1, "the node's image subscription")
            p.wait(lambda: all(s.get_publisher_count() >= 1 for s in p.subs), "the node's output publishers")
            yield p
            p.node.destroy_node()
        assert proc.returncode == 0, f"dfer_node exit code {proc.returncode} after SIGINT:\n{read_log(log_path)}"


def test_corrupt_gallery_file_is_a_warning_with_the_reason_and_is_kept_aside(probe):
    active = [d for d in probe.diagnostics if d.get("state") == "active"][-1]
    assert "reid gallery file refused" in active.get("notices", ""), active
    assert "not a readable gallery file" in active["notices"] and "kept as " in active["notices"]
    assert "reid" not in active.get("missing_parts", "")  # re-identification runs: not "active without reid"
    assert active["level"] == 1  # WARN: running, without the refused file's people
    aside = list(probe.gallery.parent.glob("people.json.refused-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ this is not a gallery"


def test_person_id_survives_an_exit_and_the_forget_services_remove_it(probe):
    frames = sample_frames(40)
    first = faces_of(frames[:6], probe)
    assert first and first[-1][1].startswith("p"), f"no person id after 6 frames: {first}"
    face_a, person = first[-1]
    assert {p for _, p in first} <= {"", person}  # "" only before the first descriptor is in
    for _ in range(3):  # nobody in view for 1.8 s of stamp time: the track ends (lost_seconds 1.0)
        affect, _ = probe.process(GREY, step=0.6)
    assert affect.faces == []
    back = faces_of(frames[20:26], probe)
    face_b, person_b = back[-1]
    assert face_b != face_a and person_b == person, f"returning face: {back}"

    reply = probe.call(probe.forget_one, ForgetPerson.Request(person_id=person))
    assert reply.success, reply.message
    assert not probe.call(probe.forget_one, ForgetPerson.Request(person_id="p999")).success
    after = faces_of(frames[26:32], probe)
    assert after[-1][0] == face_b  # the same track ...
    assert after[-1][1] not in ("", person), f"forgotten person id still published: {after}"  # ... a new person
    assert person not in {p for _, p in after[1:]}
    # the gallery file is rewritten on every forget (and at shutdown): the forgotten person is gone from it too
    import json
    import stat

    data = json.loads(probe.gallery.read_text())
    assert person not in [p["person_id"] for p in data["people"]]
    assert stat.S_IMODE(probe.gallery.stat().st_mode) == 0o600
    assert probe.call(probe.forget_all, ForgetAllPeople.Request()).forgotten == 1
    assert json.loads(probe.gallery.read_text())["people"] == []
