"""Record ROS topics into a rosbag2 bag (mcap or sqlite3) without the ``ros2`` CLI (rclpy + rosbags).

Subscriptions are created with ``raw=True``, so rclpy hands over the CDR bytes and they go into the
bag unchanged; the dfer_ros message definitions are registered from the ``.msg`` files so the bag is
self-describing. A topic's type is taken from the ROS graph once a publisher appears.

    dfer bag record --out OUT_BAG [--storage mcap|sqlite3] --topics /faces/affect ...
        [--count N] [--idle 3] [--duration 60] [--ready-file PATH] [--ros-args -p use_sim_time:=true]

Stops on SIGINT/SIGTERM, after ``--count`` messages on the first topic, after ``--idle`` seconds without
a message (once one arrived) or after ``--duration`` seconds; the bag is always closed properly.
Bag time is the recorder's ROS clock, i.e. the bag's ``/clock`` when run with ``use_sim_time:=true``.

``ResultsBagWriter`` (used by offline evaluation) writes pipeline ``FrameResult`` objects as the
node's output topics, converted by ``conversions.result_to_messages`` and serialized by rclpy.
"""
from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bag_io import BagWriter

log = logging.getLogger("dfer_ros.bag_record")

OUTPUT_TOPICS = {  # the node's per-image outputs (relative names as in conversions.result_to_messages)
    "faces/affect": "dfer_ros/msg/FaceAffectArray",
    "faces/expression": "dfer_ros/msg/FaceExpressionArray",
    "faces/valence_arousal": "dfer_ros/msg/FaceValenceArousalArray",
    "faces/action_units": "dfer_ros/msg/FaceActionUnitsArray",
    "faces/tracked": "dfer_ros/msg/TrackedFaces",
}
DEFAULT_TOPICS = ["/" + t for t in OUTPUT_TOPICS]


class ResultsBagWriter:
    """Write ``FrameResult``s as the node's output messages (CDR from rclpy) into a new bag."""

    def __init__(self, path, storage: str = "mcap", namespace: str = "/", au_threshold: float = 0.5):
        self.writer = BagWriter(path, storage)
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.au_threshold = au_threshold

    def __enter__(self) -> "ResultsBagWriter":
        self.writer.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.writer.__exit__(*exc)

    def write(self, result, frame_id: str, time_ns: int) -> None:
        """One processed image: all five output topics, stamped with the source image's stamp."""
        from builtin_interfaces.msg import Time
        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from dfer_ros.ros.conversions import result_to_messages

        sec, nsec = divmod(int(round(result.stamp * 1e9)), 1_000_000_000)
        header = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id)
        for rel, msg in result_to_messages(result, header, self.au_threshold).items():
            self.writer.write_raw(f"{self.namespace}/{rel}", OUTPUT_TOPICS[rel], time_ns, serialize_message(msg))


class Recorder:
    """Raw subscriptions on ``topics``, each message written to the bag as it arrives."""

    def __init__(self, node, out, topics: Sequence[str], storage: str = "mcap", depth: int = 100,
                 receipt_log: Optional[str] = None):
        self.node = node
        self.receipt_log = open(receipt_log, "w") if receipt_log else None
        self.topics = list(topics)
        self.depth = depth
        self.writer = BagWriter(out, storage).__enter__()
        self.subs: dict[str, object] = {}
        self.counts = {t: 0 for t in self.topics}
        self.last_message: Optional[float] = None

    def discover(self) -> bool:
        """Subscribe to every topic whose type the graph now knows; True when all are subscribed."""
        from dfer_ros.ros.bag_replay import message_class, replay_qos

        known = dict(self.node.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.subs or topic not in known:
                continue
            msgtype = known[topic][0]
            cls = message_class(msgtype)
            self.writer.add_topic(topic, msgtype)
            self.subs[topic] = self.node.create_subscription(
                cls, topic, lambda data, t=topic, mt=msgtype: self._on_message(t, mt, data), replay_qos(self.depth),
                raw=True)
            log.info("recording %s (%s)", topic, msgtype)
        return len(self.subs) == len(self.topics)

    def matched(self) -> bool:
        """Every topic subscribed and each subscription matched to at least one publisher."""
        return len(self.subs) == len(self.topics) and all(self.node.count_publishers(t) > 0 for t in self.topics)

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        self.writer.write_raw(topic, msgtype, self.node.get_clock().now().nanoseconds, data)
        self.counts[topic] += 1
        self.last_message = time.monotonic()
        if self.receipt_log is not None:
            self.receipt_log.write(f"{topic} {time.monotonic_ns()}\n")

    def close(self) -> None:
        self.writer.__exit__(None, None, None)
        if self.receipt_log is not None:
            self.receipt_log.close()


def record(out, topics: Sequence[str] = DEFAULT_TOPICS, storage: str = "mcap", count: int = 0, idle: float = 0.0,
           duration: float = 0.0, ready_file: Optional[str] = None, receipt_log: Optional[str] = None,
           ros_args: Sequence[str] = ()) -> dict[str, int]:
    """Record ``topics`` into the new bag ``out`` from a node of its own (``dfer_bag_record``) in a ROS session
    of this process (host-local DDS settings, the caller's ROS_DOMAIN_ID; ``ros_args``: ``--ros-args ...``).

    Runs until SIGINT/SIGTERM, ``count`` messages on the first topic, ``idle`` seconds without a message (once
    one arrived) or ``duration`` seconds (0: no such limit); ``ready_file`` is written once every topic is
    subscribed and has a publisher. The bag is always closed. Returns the messages recorded per topic; a bag
    that cannot be written raises ``BagError``.
    """
    from dfer_ros.ros.bag_replay import inherited_domain_id
    from dfer_ros.ros.environment import apply_local_ros_env

    apply_local_ros_env(domain_id=inherited_domain_id())
    import rclpy
    from rclpy.node import Node

    from dfer_ros.ros.session import ros_session

    stop = {"flag": False}

    def on_signal(*_):
        stop["flag"] = True

    with ros_session(["dfer_bag_record", *ros_args]):  # rcl skips argv[0]
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        node = Node("dfer_bag_record")
        rec = Recorder(node, out, topics, storage, receipt_log=receipt_log)
        t0 = time.monotonic()
        ready = False
        try:
            while not stop["flag"]:
                rclpy.spin_once(node, timeout_sec=0.05)
                if len(rec.subs) < len(rec.topics):
                    rec.discover()
                if not ready and rec.matched():
                    ready = True
                    if ready_file:
                        Path(ready_file).write_text("ready\n")
                    log.info("all topics matched")
                if count and rec.counts[rec.topics[0]] >= count:
                    break
                if idle and rec.last_message is not None and time.monotonic() - rec.last_message > idle:
                    break
                if duration and time.monotonic() - t0 > duration:
                    break
        finally:
            rec.close()
            node.destroy_node()
    return rec.counts


if __name__ == "__main__":  # the command line: dfer_ros/cli/bag_record.py (also dfer bag record)
    from dfer_ros.commands import exec_cli

    exec_cli("bag_record", "dfer bag record")
