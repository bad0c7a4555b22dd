"""Replay and record without the ros2 CLI, and live evaluation through a running node subprocess.

All processes use the test run's ROS environment (host-local DDS, private domain). Run with
``bash scripts/run_tests.sh tests/test_bag_live.py -q`` (loopback-only network namespace)."""
from __future__ import annotations

import numpy as np
import pytest

from ros_helpers import read_log, ros_process

from dfer_ros import assets
from dfer_ros import bag_io
from dfer_ros.evaluation.predictions import events_path, read_events, read_predictions

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

pytestmark = pytest.mark.ros

N = 40
START = 1000.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "camera"
    bag_io.video_to_bag(assets.sample_video(), path, "/camera/image_raw", "mcap", limit=N, start_stamp=START)
    return path


def test_replay_to_recorder_copies_the_bag(ros_env, tmp_path, bag):
    """bag_replay (as fast as possible, /clock) -> bag_record (sqlite3): same images, stamps and order."""
    out = tmp_path / "copy"
    ready = tmp_path / "ready"
    rec_log, rep_log = tmp_path / "record.log", tmp_path / "replay.log"
    with ros_process(["-m", "dfer_ros.ros.bag_record", "--out", str(out), "--storage", "sqlite3", "--topics",
                      "/camera/image_raw", "/clock", "--count", str(N), "--duration", "120", "--ready-file",
                      str(ready)], ros_env, rec_log) as recorder:
        with ros_process(["-m", "dfer_ros.ros.bag_replay", str(bag), "--rate", "0", "--wait-subscribers", "1",
                          "--no-progress"], ros_env, rep_log) as replay:
            assert replay.wait(timeout=120) == 0, read_log(rep_log)
        assert recorder.wait(timeout=120) == 0, read_log(rec_log)
    assert f"published /camera/image_raw: {N}" in read_log(rep_log)
    info = bag_io.bag_info(out)
    assert info.storage == "sqlite3" and info.topics["/camera/image_raw"] == ("sensor_msgs/msg/Image", N)
    original = list(bag_io.read_images(bag))
    copied = list(bag_io.read_images(out, "/camera/image_raw"))
    assert [c.stamp for c in copied] == [o.stamp for o in original]
    for c, o in zip(copied[::13], original[::13]):
        np.testing.assert_array_equal(c.image, o.image)
    clock = [m.clock.sec + m.clock.nanosec * 1e-9 for _, _, _, m in bag_io.read_messages(out, ["/clock"])]
    assert clock and clock == sorted(clock) and START <= clock[0] and clock[-1] <= original[-1].stamp + 1e-6


def test_replay_reports_unknown_topic(ros_env, tmp_path, bag):
    log = tmp_path / "replay.log"
    with ros_process(["-m", "dfer_ros.ros.bag_replay", str(bag), "--topics", "/nope", "--no-progress"], ros_env, log) as p:
        assert p.wait(timeout=60) == 2
    assert "no topic(s) /nope in the bag" in read_log(log)


def test_live_evaluation_through_the_node(ros_env, tmp_path, bag):
    """Recorded pace with /clock into a node with use_sim_time: every output is stamped with one of the
    bag's image stamps (the node may drop frames when it falls behind, never invent stamps)."""
    from dfer_ros.evaluation.live_eval import evaluate_live

    out, out_bag = tmp_path / "live.jsonl", tmp_path / "out_bag"
    run = evaluate_live(bag, out, output_bag=out_bag, rate=1.0, env=ros_env, log_dir=tmp_path / "logs",
                        progress=False)
    stamps = {round(s, 6) for s in bag_io.image_stamps(bag, "/camera/image_raw")}
    affect = [m for _, _, _, m in bag_io.read_messages(out_bag, ["/faces/affect"])]
    assert 0 < len(affect) <= N and run.summary.frames == len(affect)
    got = [round(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, 6) for m in affect]
    assert set(got) <= stamps and got == sorted(got)
    assert all(m.header.frame_id == "camera" for m in affect)
    records = list(read_predictions(out))
    assert records and all(round(r["stamp"], 6) in stamps and 0 <= r["frame"] < N for r in records)
    assert {r["face_id"] for r in records} == {"f1"}  # one person in the video, one stable id
    assert len(run.latencies_ms) == len(affect) and min(run.latencies_ms) > 0.0
    times = [ns for _, _, ns, _ in bag_io.read_messages(out_bag, ["/faces/affect"])]
    assert all(ns >= START * 1e9 for ns in times)  # recorded on the bag's /clock (sim time), never at 0
    for topic in ("/faces/expression", "/faces/valence_arousal", "/faces/action_units", "/faces/tracked"):
        assert bag_io.bag_info(out_bag).topics[topic][1] == len(affect)
    # the node's expression events go to <name>.events.jsonl as offline mode writes them (empty: none here,
    # the first 40 frames of cap12 are neutral), and the summary counts their onsets
    events = read_events(events_path(out))
    assert run.summary.events == sum(e["kind"] == "onset" for e in events)
    assert all(e["face_id"] == "f1" and round(e["stamp"], 6) in stamps for e in events)
    assert all("abstained" in r and "person_id" in r for r in records)


def test_event_messages_become_the_offline_event_records():
    """Live mode reads the events back from the node's messages: the records equal offline mode's."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from dfer_ros.evaluation.live_eval import event_records
    from dfer_ros.evaluation.predictions import event_record
    from dfer_ros.perception.events import OFFSET, ONSET, ExpressionEvent
    from dfer_ros.ros.conversions import events_to_message

    onset = ExpressionEvent(ONSET, "f3", "surprise", 2, 1012.04, 1011.96, 1012.0, None, 0.08, 0.61, 0.55,
                            person_id="p1")
    offset = ExpressionEvent(OFFSET, "f3", "surprise", 2, 1012.92, 1011.96, 1012.44, 1012.92, 0.96, 0.74, 0.58,
                             end_reason="relaxed", person_id="p1")
    msg = events_to_message([onset, offset], Header(stamp=Time(sec=1012, nanosec=920_000_000), frame_id="cam"))
    got = event_records(msg, {1012.04: 7, 1012.92: 29})
    assert [g.pop("frame") for g in got] == [7, 29]
    assert got == [event_record(onset), event_record(offset)]
