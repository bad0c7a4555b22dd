"""Replay a rosbag2 bag (mcap or sqlite3) to ROS topics without the ``ros2`` CLI (rclpy + rosbags).

The CDR bytes stored in the bag are published as they are (rclpy publishers accept serialized
bytes), so nothing is deserialized on the way. Messages go out at the recorded pace scaled by
``--rate`` (2 = twice as fast, 0 = as fast as possible), and ``/clock`` carries the bag time of each
message (plus ticks in between), so a node started with ``use_sim_time:=true`` sees the recorded time.

    dfer bag replay BAG [--rate 1.0] [--topics /camera/image_raw ...]
        [--remap /camera/image_raw:=/image] [--wait-subscribers 1] [--no-clock] [--loop N]

``--wait-subscribers N`` holds playback until every replayed topic has N subscribers, so the first
frames are not lost to DDS discovery. The DDS settings come from ``local_ros_env`` (host-local).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Optional, Sequence

from dfer_ros.bag_io import BagError, bag_info, read_raw

log = logging.getLogger("dfer_ros.bag_replay")


def message_class(msgtype: str):
    """The rclpy message class of a ROS 2 type name such as ``sensor_msgs/msg/Image``."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise BagError(f"cannot load message type {msgtype!r} (expected pkg/msg/Name)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {msgtype} is not installed in this Python environment: {exc}") from exc


def replay_qos(depth: int = 100):
    """Reliable, keep-last ``depth``: compatible with reliable and best-effort subscribers, loses nothing
    on the shared-memory transport (REFERENCE §1) while a slow subscriber catches up."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def inherited_domain_id() -> Optional[int]:
    """The caller's ROS_DOMAIN_ID (a test or live evaluation picks one), else None (a fresh pick)."""
    value = os.environ.get("ROS_DOMAIN_ID", "")
    return int(value) if value.isdigit() else None


def replay(node, bag, topics: Optional[Sequence[str]] = None, rate: float = 1.0, clock: bool = True,
           remap: Optional[dict[str, str]] = None, wait_subscribers: int = 0, wait_timeout: float = 30.0,
           clock_hz: float = 100.0, loops: int = 1, progress: bool = True, limit: Optional[int] = None,
           wait_clock_subscribers: int = 0, tail_seconds: float = 0.0,
           publish_log: Optional[str] = None) -> dict[str, int]:
    """Publish the bag's messages from ``node``; returns the number published per (remapped) topic.

    ``wait_clock_subscribers``: also wait for that many ``/clock`` subscribers (nodes with use_sim_time),
    publishing the bag's start time meanwhile, so their clocks are set before the first message.
    ``tail_seconds``: keep ticking ``/clock`` that long (bag time) after the last message, so outputs of
    the last frames get later times. ``publish_log``: a file getting ``topic bag_ns monotonic_ns`` per message.
    """
    import rclpy
    from rosgraph_msgs.msg import Clock

    if rate < 0:
        raise BagError(f"--rate must be >= 0, got {rate}")
    info = bag_info(bag)
    chosen = list(topics) if topics else sorted(info.topics)
    missing = [t for t in chosen if t not in info.topics]
    if missing:
        raise BagError(f"{info.path}: no topic(s) {', '.join(missing)} in the bag; "
                       f"topics: {', '.join(sorted(info.topics))}")
    remap = remap or {}
    pubs = {t: node.create_publisher(message_class(info.topics[t][0]), remap.get(t, t), replay_qos()) for t in chosen}
    clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None

    def publish_clock(ns: int) -> None:
        if clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(int(ns), 1_000_000_000)
            clock_pub.publish(msg)

    def waiting() -> list[str]:
        short = [remap.get(t, t) for t, p in pubs.items() if p.get_subscription_count() < wait_subscribers]
        if clock_pub is not None and clock_pub.get_subscription_count() < wait_clock_subscribers:
            short.append("/clock")
        return short

    deadline = time.monotonic() + wait_timeout
    while waiting():
        if time.monotonic() > deadline:
            raise BagError(f"not enough subscribers on {', '.join(waiting())} after {wait_timeout:.0f} s")
        publish_clock(info.start_ns)
        rclpy.spin_once(node, timeout_sec=0.05)
    if wait_clock_subscribers and clock_pub is not None:  # let the start time reach every clock subscriber
        for _ in range(5):
            publish_clock(info.start_ns)
            rclpy.spin_once(node, timeout_sec=0.02)
    counts = {remap.get(t, t): 0 for t in chosen}
    total = sum(info.topics[t][1] for t in chosen)
    total = (min(total, limit) if limit is not None else total) * max(loops, 1)
    bar = _bar(total, progress)
    log_file = open(publish_log, "w") if publish_log else None
    wall0: Optional[float] = None
    bag0 = last_ns = 0

    def tick_until(due: float) -> None:
        """Sleep until the monotonic time ``due``, publishing /clock at ``clock_hz`` meanwhile."""
        while True:
            now = time.monotonic()
            if now >= due:
                return
            time.sleep(min(due - now, 1.0 / clock_hz))
            publish_clock(bag0 + int((time.monotonic() - wall0) * rate * 1e9))

    try:
        for _ in range(max(loops, 1)):
            wall0 = None
            for sent, (topic, _, bag_ns, data) in enumerate(read_raw(bag, chosen)):
                if limit is not None and sent >= limit:
                    break
                if wall0 is None:
                    wall0, bag0 = time.monotonic(), bag_ns
                if rate > 0:  # wait for the message's due time, ticking /clock in between
                    tick_until(wall0 + (bag_ns - bag0) * 1e-9 / rate)
                publish_clock(bag_ns)
                pubs[topic].publish(data)
                if log_file is not None:
                    log_file.write(f"{remap.get(topic, topic)} {bag_ns} {time.monotonic_ns()}\n")
                counts[remap.get(topic, topic)] += 1
                last_ns = bag_ns
                bar.update(1)
        if tail_seconds > 0 and wall0 is not None and rate > 0:
            tick_until(wall0 + (last_ns - bag0) * 1e-9 / rate + tail_seconds / rate)
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    return counts


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", desc="replay", disable=not enabled, file=sys.stderr)


def replay_bag(bag, topics: Optional[Sequence[str]] = None, rate: float = 1.0, clock: bool = True,
               remap: Optional[dict[str, str]] = None, wait_subscribers: int = 0, wait_timeout: float = 30.0,
               loops: int = 1, progress: bool = True, limit: Optional[int] = None, wait_clock_subscribers: int = 0,
               tail_seconds: float = 0.0, publish_log: Optional[str] = None,
               ros_args: Sequence[str] = ()) -> dict[str, int]:
    """Replay ``bag`` from a node of its own (``dfer_bag_replay``) in a ROS session of this process, with the
    host-local DDS settings and the caller's ROS_DOMAIN_ID; ``ros_args``: ``--ros-args ...`` for that session.
    The arguments after ``bag`` are those of :func:`replay`. Returns the number published per (remapped) topic;
    a bad bag, topic or rate raises ``BagError``."""
    from dfer_ros.ros.environment import apply_local_ros_env

    apply_local_ros_env(domain_id=inherited_domain_id())
    import rclpy
    from rclpy.node import Node

    from dfer_ros.ros.session import ros_session

    with ros_session(["dfer_bag_replay", *ros_args]):  # rcl skips argv[0]
        node = Node("dfer_bag_replay")
        try:
            counts = replay(node, bag, topics, rate, clock, remap, wait_subscribers, wait_timeout, loops=loops,
                            progress=progress, limit=limit, wait_clock_subscribers=wait_clock_subscribers,
                            tail_seconds=tail_seconds, publish_log=publish_log)
            # let reliable writers hand the last samples over before the process exits
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
        finally:
            node.destroy_node()
    return counts


if __name__ == "__main__":  # the command line: dfer_ros/cli/bag_replay.py (also dfer bag replay)
    from dfer_ros.commands import exec_cli

    exec_cli("bag_replay", "dfer bag replay")
