"""REP-155 producer mode (``hri.mode: producer``) over real DDS, against the real hri_msgs 2.0.0.

The node runs as a subprocess with ``hri.enabled:=true hri.mode:=producer``; this process feeds it real faces with
stamps it chooses and checks, per face, ``roi``, ``landmarks``, ``cropped``, ``aligned`` (beside ``expression`` and
``facs``, checked in test_hri_topics.py) and, per person, ``anonymous`` and ``engagement_status``: they appear with
the face, carry the values and stamps of the node's own ``faces/affect`` for the same image, and go with it. The
engagement test feeds cap13's real head turn (facing the camera, then turned away). Skipped with the reason where
hri_msgs is not built (``make setup``).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from dfer_ros.ros.hri_publisher import (FACE_IMAGE_SIDE, LANDMARK_SLOTS, LANDMARKS, aligned_face, carried_landmarks,
                                        cropped_face, landmark_points, normalized_box)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TIMEOUT = 60.0
PER_FACE = ("roi", "landmarks", "cropped", "aligned", "expression", "facs")


# --- the conversions, without ROS ---------------------------------------------------------------------------
def test_roi_is_normalised_to_the_image_and_clipped():
    assert normalized_box(100, 50, 200, 100, 400, 200) == (0.25, 0.25, 0.75, 0.75)
    assert normalized_box(-10, 150, 50, 100, 400, 200) == (0.0, 0.75, 0.1, 1.0)


def test_landmarks_fill_our_five_slots_and_mark_the_rest_not_available():
    flat = [100, 50, 300, 50, 200, 100, 120, 150, 280, 150]
    points = landmark_points(flat, 0.9, 400, 200)
    assert points == [(0.25, 0.25, pytest.approx(0.9)), (0.75, 0.25, pytest.approx(0.9)),
                      (0.5, 0.5, pytest.approx(0.9)), (0.3, 0.75, pytest.approx(0.9)), (0.7, 0.75, pytest.approx(0.9))]
    assert landmark_points([], 0.9, 400, 200) == [(0.0, 0.0, 0.0)] * 5  # no landmarks: c = 0 everywhere
    assert len(LANDMARK_SLOTS) == 5 and LANDMARKS == 70


def test_carried_landmarks_move_and_scale_with_the_box():
    flat = [110, 60, 130, 60, 120, 70, 112, 80, 128, 80]  # found in the box (100, 50, 40, 40)
    assert carried_landmarks(flat, (100, 50, 40, 40), (100, 50, 40, 40)) == pytest.approx(flat)
    moved = carried_landmarks(flat, (100, 50, 40, 40), (200, 150, 80, 60))  # moved by (100, 100), scaled 2 x 1.5
    assert moved == pytest.approx([220, 165, 260, 165, 240, 180, 224, 195, 256, 195])
    assert carried_landmarks([], (100, 50, 40, 40), (0, 0, 10, 10)) == []
    assert carried_landmarks(flat, (100, 50, 0, 40), (0, 0, 10, 10)) == []  # a degenerate box carries nothing


def test_cropped_face_is_the_box_scaled_centred_and_zero_padded():
    frame = np.full((300, 400, 3), 200, np.uint8)
    crop = cropped_face(frame, (100, 50, 100, 200))  # a tall box: scaled to 64 x 128, padded left and right
    assert crop.shape == (FACE_IMAGE_SIDE, FACE_IMAGE_SIDE, 3) and crop.dtype == np.uint8
    assert (crop[:, :30] == 0).all() and (crop[:, -30:] == 0).all() and (crop[:, 40:88] == 200).all()
    assert (cropped_face(frame, (500, 500, 10, 10)) == 0).all()  # outside the image: all padding


# --- over DDS ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hri_prefix():
    import ros2_stack

    return ros2_stack.hri_msgs_prefix(pytest)


class Producer:
    """One dfer_node in producer mode, an image publisher and subscriptions by stamp, in this test process."""

    def __init__(self, rclpy, hri, proc, log_path, ns: str):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from dfer_ros.msg import FaceAffectArray
        from dfer_ros.ros.conversions import stamp_to_seconds

        self.rclpy, self.hri, self.proc, self.log_path, self.ns = rclpy, hri, proc, log_path, ns
        self.node = rclpy.create_node("dfer_hri_producer_probe")
        self.reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.seconds = stamp_to_seconds
        self.affect, self.tracked, self.got = {}, {}, {}
        self.node.create_subscription(FaceAffectArray, f"{ns}/faces/affect",
                                      lambda m: self.affect.__setitem__(stamp_to_seconds(m.header.stamp), m),
                                      self.reliable)
        self.node.create_subscription(hri.IdsList, "/humans/faces/tracked",
                                      lambda m: self.tracked.__setitem__(stamp_to_seconds(m.header.stamp), m),
                                      self.reliable)
        self.image_pub = self.node.create_publisher(Image, f"{ns}/camera/image", self.reliable)
        self.stamp = time.time() - 3600.0

    def spin(self):
        from ros_helpers import read_log

        assert self.proc.poll() is None, f"dfer_node exited with {self.proc.returncode}:\n{read_log(self.log_path)}"
        self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def wait(self, condition, what, timeout=TIMEOUT):
        from ros_helpers import read_log, wait_until

        try:
            wait_until(condition, timeout, self.spin, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- node log (tail) ---\n{read_log(self.log_path)[-3000:]}") from None

    def process(self, frame, step=0.04) -> float:
        from builtin_interfaces.msg import Time

        from dfer_ros.ros.conversions import array_to_image

        self.stamp = round(self.stamp + step, 6)
        msg = array_to_image(frame, "bgr8")
        sec = int(self.stamp)
        msg.header.stamp = Time(sec=sec, nanosec=int(round((self.stamp - sec) * 1e9)))
        msg.header.frame_id = "hri_camera"
        self.image_pub.publish(msg)
        s = self.stamp
        self.wait(lambda: s in self.affect and s in self.tracked, f"faces/affect and /humans/faces/tracked for {s}")
        return s

    def publishers(self, topic):
        return [i for i in self.node.get_publishers_info_by_topic(topic) if i.node_name == "dfer_node"]

    def subscribe(self, kind, topic, qos=None):
        """Messages on ``topic`` by stamp (or in a list for messages without a header)."""
        store = self.got.setdefault(topic, {} if hasattr(kind, "get_fields_and_field_types")
                                    and "header" in kind.get_fields_and_field_types() else [])
        if isinstance(store, dict):
            callback = lambda m: store.__setitem__(self.seconds(m.header.stamp), m)  # noqa: E731
        else:
            callback = store.append
        sub = self.node.create_subscription(kind, topic, callback, qos or self.reliable)
        self.wait(lambda: sub.get_publisher_count() >= 1, f"our subscription on {topic} to match")
        return store


def _node_args(ns: str, extra=()):
    return ["-m", "dfer_ros.ros.node", "--ros-args", "-r", f"__ns:={ns}", "-r", f"image:={ns}/camera/image",
            "-p", "hri.enabled:=true", "-p", "hri.mode:=producer", "-p", "image_qos.reliability:=reliable",
            "-p", "image_qos.depth:=10", "-p", "tracking.lost_seconds:=0.5", *extra]


def test_producer_topics_carry_the_affect_values_and_go_with_the_face(ros_env, hri_prefix, tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    import ros2_stack
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, String

    from dfer_ros.ros.session import ros_session
    from ros_helpers import ros_process, sample_frames

    frames = sample_frames(16)
    hri = ros2_stack.import_hri_msgs(hri_prefix)
    ns, log_path = "/hri_producer", tmp_path / "dfer_node.log"
    with ros_session(), ros_process(_node_args(ns), ros2_stack.hri_env(hri_prefix, ros_env), log_path) as proc:
        p = Producer(rclpy, hri, proc, log_path, ns)
        p.wait(lambda: p.image_pub.get_subscription_count() >= 1, "dfer_node to subscribe to the images", timeout=120)
        face_id = None
        for frame in frames[:8]:
            s = p.process(frame)
            if p.affect[s].faces:
                face_id = p.affect[s].faces[0].face_id
        assert face_id, "no face tracked in the real video frames"
        root = f"/humans/faces/{face_id}"
        p.wait(lambda: all(p.publishers(f"{root}/{t}") for t in PER_FACE), "every per-face topic to appear")
        types = {t: p.publishers(f"{root}/{t}")[0].topic_type for t in PER_FACE}
        assert types == {"roi": "hri_msgs/msg/NormalizedRegionOfInterest2D", "landmarks": "hri_msgs/msg/FacialLandmarks",
                         "cropped": "sensor_msgs/msg/Image", "aligned": "sensor_msgs/msg/Image",
                         "expression": "hri_msgs/msg/Expression", "facs": "hri_msgs/msg/FacialActionUnits"}
        rois = p.subscribe(hri.NormalizedRegionOfInterest2D, f"{root}/roi")
        marks = p.subscribe(hri.FacialLandmarks, f"{root}/landmarks")
        cropped = p.subscribe(Image, f"{root}/cropped")
        aligned = p.subscribe(Image, f"{root}/aligned")
        # moving video frames at 25 Hz, then a still face (the same image again) at 30 Hz: with the default
        # detection.redetect_period (0.1 s) the still face coasts on some images (its box predicted, detected
        # false, no landmarks in faces/affect)
        fed = [(frame, 0.04) for frame in frames[8:14]] + [(frames[13], 1 / 30)] * 12
        slots = [getattr(hri.FacialLandmarks, name) for name in LANDMARK_SLOTS]
        assert slots == [68, 69, 30, 48, 54]  # right/left pupil, nose tip, outer mouth corners
        stamps, still = [], []
        for i, (frame, step) in enumerate(fed):
            s = p.process(frame, step)
            stamps.append(s)
            if i >= 6:
                still.append(s)
            p.wait(lambda: all(s in store for store in (rois, cropped, aligned)), f"{root}/* for stamp {s}")
            face = p.affect[s].faces[0]
            header = p.affect[s].header
            height, width = frame.shape[:2]
            roi = rois[s]
            for msg in (roi, cropped[s], aligned[s]):  # the source image's header, as faces/affect's
                assert msg.header.stamp == header.stamp and msg.header.frame_id == header.frame_id == "hri_camera"
            r = face.roi
            assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax) == pytest.approx(
                (r.x_offset / width, r.y_offset / height, (r.x_offset + r.width) / width,
                 (r.y_offset + r.height) / height), abs=1e-6)
            assert roi.c == pytest.approx(face.detection_score, abs=1e-6)
            for image in (cropped[s], aligned[s]):
                assert (image.width, image.height, image.encoding, image.step) == (128, 128, "bgr8", 128 * 3)
                pixels = np.frombuffer(image.data, np.uint8).reshape(128, 128, 3)
                assert pixels.std() > 10, "a face image, not a blank one"
            expected = cropped_face(frame, (r.x_offset, r.y_offset, r.width, r.height))
            got = np.frombuffer(cropped[s].data, np.uint8).reshape(128, 128, 3)
            assert np.abs(got.astype(int) - expected.astype(int)).max() == 0  # the box of faces/affect, cut here
        # landmarks: exactly the images whose faces/affect has this face detected with its points. Per topic the
        # messages arrive in order, so once the last such image's message is in, every earlier one is too
        detected = [s for s in stamps if p.affect[s].faces[0].detected and len(p.affect[s].faces[0].landmarks) == 10]
        coasting = [s for s in still if not p.affect[s].faces[0].detected]
        assert detected and coasting, f"the still face coasts on some images and is detected on others: {still}"
        assert all(len(p.affect[s].faces[0].landmarks) == 0 for s in coasting)
        p.wait(lambda: detected[-1] in marks, f"{root}/landmarks for stamp {detected[-1]}")
        assert sorted(s for s in marks if s >= stamps[0]) == detected  # none for a coasting image
        for s in detected:
            lm, face = marks[s], p.affect[s].faces[0]
            assert lm.header.stamp == p.affect[s].header.stamp and lm.header.frame_id == "hri_camera"
            assert (lm.width, lm.height) == (width, height) and len(lm.landmarks) == LANDMARKS
            ours = list(face.landmarks)
            for i, slot in enumerate(slots):
                point = lm.landmarks[slot]
                assert (point.x, point.y) == pytest.approx((ours[2 * i] / width, ours[2 * i + 1] / height), abs=1e-6)
                assert point.c == pytest.approx(face.detection_score, abs=1e-6) and point.c > 0
            others = [lm.landmarks[i] for i in range(LANDMARKS) if i not in slots]
            assert all(pt.c == 0.0 and pt.x == 0.0 and pt.y == 0.0 for pt in others)  # not available
        # aligned stays aligned on the still face's coasting images: cut on the last detected landmarks moved with
        # the box, so it matches the detected images' aligned face, not a plain box crop
        still_frame = frames[13]

        def pixels(s):
            return np.frombuffer(aligned[s].data, np.uint8).reshape(128, 128, 3).astype(int)

        for s in coasting:
            last = max(d for d in detected if d < s)
            then, now = p.affect[last].faces[0], p.affect[s].faces[0]
            box_then = (then.roi.x_offset, then.roi.y_offset, then.roi.width, then.roi.height)
            box_now = (now.roi.x_offset, now.roi.y_offset, now.roi.width, now.roi.height)
            box_crop = aligned_face(still_frame, box_now, [])
            off_aligned = np.abs(pixels(s) - pixels(last)).mean()
            off_box_crop = np.abs(box_crop.astype(int) - pixels(last)).mean()
            assert off_aligned < 0.5 * off_box_crop, (s, off_aligned, off_box_crop)
            expected = aligned_face(still_frame, box_now, carried_landmarks(then.landmarks, box_then, box_now))
            assert np.abs(pixels(s) - expected.astype(int)).max() == 0
        # per person: anonymous (latched false: a re-identified person) and engagement_status with each image
        person_id = p.affect[s].faces[0].person_id
        assert person_id, "re-identification gives the face a person id"
        proot = f"/humans/persons/{person_id}"
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        anonymous = p.subscribe(Bool, f"{proot}/anonymous", latched)
        face_ids = p.subscribe(String, f"{proot}/face_id", latched)
        engagement = p.subscribe(hri.EngagementLevel, f"{proot}/engagement_status")
        s = p.process(frames[14])
        p.wait(lambda: anonymous and face_ids and s in engagement, f"anonymous, face_id and engagement of {person_id}")
        assert anonymous[-1].data is False and face_ids[-1].data == face_id
        level = engagement[s].level
        assert level in (hri.EngagementLevel.ENGAGING, hri.EngagementLevel.ENGAGED)  # cap12 faces the camera
        assert engagement[s].header.stamp == p.affect[s].header.stamp
        # the face ends: every per-face and per-person topic goes with it
        blank = np.zeros_like(frames[0])
        for _ in range(3):
            s = p.process(blank, step=0.4)
        assert p.affect[s].faces == [] and list(p.tracked[s].ids) == []
        gone = [f"{root}/{t}" for t in PER_FACE] + [f"{proot}/{t}" for t in ("anonymous", "face_id", "engagement_status")]
        p.wait(lambda: not any(p.publishers(t) for t in gone), "the ended face's and person's topics to disappear")
        p.node.destroy_node()
    assert proc.returncode == 0


def test_cropped_and_aligned_are_cut_only_for_subscribers(hri_prefix):
    """In this process, over real DDS: no image is cut while nobody subscribes; one per topic and image once
    someone does."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    import ros2_stack
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image, RegionOfInterest
    from std_msgs.msg import Header

    from dfer_ros.msg import FaceAffect, FaceAffectArray
    from dfer_ros.ros.hri_publisher import HriPublisher
    from dfer_ros.ros.session import ros_session
    from ros_helpers import sample_frames, wait_until

    ros2_stack.import_hri_msgs(hri_prefix)
    frame = sample_frames(1)[0]
    face = FaceAffect(face_id="f1", person_id="p1", roi=RegionOfInterest(x_offset=150, y_offset=80, width=100,
                                                                          height=120), detection_score=0.9)
    affect = FaceAffectArray(header=Header(frame_id="cam"), faces=[face])
    conversions = [0]

    def frame_once():
        conversions[0] += 1
        return frame

    with ros_session():
        node = rclpy.create_node("hri_lazy_images")
        hri = HriPublisher(node, mode="producer")
        for i in range(5):
            affect.header.stamp.sec = 100 + i
            hri.publish(affect, (), image_size=(400, 300), frame=frame_once, stamp=100.0 + i)
        assert hri.images_made == 0 and conversions[0] == 0  # nobody subscribes: nothing cut, not even converted
        got = []
        sub = node.create_subscription(Image, "/humans/faces/f1/aligned", got.append, QoSProfile(depth=10))
        wait_until(lambda: sub.get_publisher_count() >= 1, TIMEOUT, lambda: rclpy.spin_once(node, timeout_sec=0.05),
                   "the aligned subscription to match")
        affect.header.stamp.sec = 200
        hri.publish(affect, (), image_size=(400, 300), frame=frame_once, stamp=200.0)
        assert hri.images_made == 1 and conversions[0] == 1  # aligned only; cropped still has no subscriber
        wait_until(lambda: got, TIMEOUT, lambda: rclpy.spin_once(node, timeout_sec=0.05), "the aligned image")
        assert (got[0].width, got[0].height, got[0].header.stamp.sec) == (128, 128, 200)
        hri.close()
        node.destroy_node()


def test_engagement_walks_the_levels_as_a_real_face_turns_to_the_camera_and_away(ros_env, hri_prefix, tmp_path):
    """cap13's real head turn (frames 470-520: facing the camera, then turned away) at ``hri_bench.TURN_STEP``
    seconds an image: engagement_status walks ENGAGING -> ENGAGED -> DISENGAGING -> DISENGAGED. The turn reads
    15.7-21.6 degrees, under the default disengage angle (22: no frame of the videos is DISENGAGED with the
    defaults), so the thresholds are set between it and the facing frames (``hri_bench.WALK_CONFIG``), as the
    quality tests lower quality.max_yaw_degrees for the same frames."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    import ros2_stack

    from dfer_ros.assets import AssetError
    from dfer_ros.bench.hri_bench import TURN_STEP, WALK_CONFIG, turn_frames
    from dfer_ros.ros.session import ros_session
    from ros_helpers import ros_process

    try:
        frames = turn_frames()
    except AssetError as exc:
        pytest.skip(f"cap13 missing: {exc}")
    hri = ros2_stack.import_hri_msgs(hri_prefix)
    settings = [arg for name, value in vars(WALK_CONFIG).items() for arg in ("-p", f"engagement.{name}:={value!r}")]
    ns, log_path = "/hri_engagement", tmp_path / "dfer_node.log"
    with ros_session(), ros_process(_node_args(ns, settings), ros2_stack.hri_env(hri_prefix, ros_env),
                                    log_path) as proc:
        p = Producer(rclpy, hri, proc, log_path, ns)
        p.wait(lambda: p.image_pub.get_subscription_count() >= 1, "dfer_node to subscribe to the images", timeout=120)
        s = p.process(frames[0], TURN_STEP)
        used = 1
        for frame in frames[1:6]:  # the face gets an id on its 2nd image, its person id with the image after
            if p.affect[s].faces and p.affect[s].faces[0].person_id:
                break
            s = p.process(frame, TURN_STEP)
            used += 1
        assert p.affect[s].faces and p.affect[s].faces[0].person_id, "no person id for cap13's face"
        person_id = p.affect[s].faces[0].person_id
        levels = p.subscribe(hri.EngagementLevel, f"/humans/persons/{person_id}/engagement_status")
        angles = {}
        for frame in frames[used:]:
            s = p.process(frame, TURN_STEP)
            p.wait(lambda: s in levels, f"engagement_status for {s}")
            assert p.affect[s].faces[0].person_id == person_id
            q = p.affect[s].faces[0].quality
            angles[s] = (round(float(q.yaw), 1), round(float(q.pitch), 1))
        walked = [levels[k].level for k in sorted(levels)]
        distinct = [lv for i, lv in enumerate(walked) if i == 0 or lv != walked[i - 1]]
        E = hri.EngagementLevel
        assert distinct == [E.ENGAGING, E.ENGAGED, E.DISENGAGING, E.DISENGAGED], (walked, angles)
        assert all(levels[k].header.stamp == p.affect[k].header.stamp for k in levels)
        p.node.destroy_node()
    assert proc.returncode == 0


def test_an_unknown_hri_mode_is_refused_with_the_choices():
    from dfer_ros.ros.parameters import all_parameter_specs, validate_values

    specs = all_parameter_specs()
    current = {s.name: s.default for s in specs}
    assert current["hri.mode"] == "beside"
    problem, _ = validate_values(current, {"hri.mode": "only"}, specs)
    assert problem == "hri.mode = 'only' is not one of beside, producer"
    assert validate_values(current, {"hri.mode": "producer"}, specs)[0] is None


def test_engagement_settings_changed_at_run_time_apply_to_the_next_image(hri_prefix):
    """In this process, over real DDS: a face held at 18 degrees stays ENGAGED under the default disengage angle
    (22); lowering it to 15 (the node's on-set-parameters path calls ``set_engagement_config``) turns it away."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")
    import ros2_stack
    from sensor_msgs.msg import RegionOfInterest
    from std_msgs.msg import Header

    from dfer_ros.msg import FaceAffect, FaceAffectArray, FaceQuality
    from dfer_ros.perception.config import EngagementConfig
    from dfer_ros.perception.engagement import Level
    from dfer_ros.ros.hri_publisher import HriPublisher
    from dfer_ros.ros.session import ros_session

    ros2_stack.import_hri_msgs(hri_prefix)
    face = FaceAffect(face_id="f1", person_id="p1", roi=RegionOfInterest(x_offset=10, y_offset=10, width=50, height=60),
                      quality=FaceQuality(head_pose_valid=True, yaw=0.0, pitch=0.0))
    affect = FaceAffectArray(header=Header(frame_id="cam"), faces=[face])
    with ros_session():
        node = rclpy.create_node("hri_engagement_settings")
        hri = HriPublisher(node, mode="producer")

        def images(yaw, start, count):
            face.quality.yaw = yaw
            for i in range(count):
                hri.publish(affect, (), image_size=(400, 300), frame=None, stamp=start + 0.1 * i)
            return hri.engagement.level("f1")

        assert images(0.0, 0.0, 12) == Level.ENGAGED
        assert images(18.0, 1.2, 20) == Level.ENGAGED  # within the 22 degree hysteresis
        hri.set_engagement_config(EngagementConfig(engage_max_degrees=10.0, disengage_min_degrees=15.0))
        assert images(18.0, 3.2, 1) == Level.DISENGAGING
        assert images(18.0, 3.3, 11) == Level.DISENGAGED
        hri.close()
        node.destroy_node()
