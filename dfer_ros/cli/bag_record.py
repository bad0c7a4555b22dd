"""``dfer bag record`` / ``dfer bag record``: record ROS topics into a rosbag2 bag (mcap or
sqlite3) without the ``ros2`` CLI (``dfer_ros.ros.bag_record``).

    dfer bag record --out OUT_BAG [--storage mcap|sqlite3] --topics /faces/affect ...
        [--count N] [--idle 3] [--duration 60] [--ready-file PATH] [--ros-args -p use_sim_time:=true]
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dfer_ros.cli.options import run_bag_tool, split_ros_args


def build_parser() -> argparse.ArgumentParser:
    from dfer_ros.ros.bag_record import DEFAULT_TOPICS

    parser = argparse.ArgumentParser(prog="dfer bag record", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--out", required=True, help="new bag folder (must not exist)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--topics", nargs="+", default=DEFAULT_TOPICS, help="topics to record (default: node outputs)")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages on the first topic")
    parser.add_argument("--idle", type=float, default=0.0, help="stop after S seconds without messages")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    parser.add_argument("--ready-file", help="touched once every topic is subscribed and has a publisher")
    parser.add_argument("--receipt-log", help="write 'topic monotonic_ns' per received message here (latency)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    own, ros_args = split_ros_args(argv)
    args = build_parser().parse_args(own)
    from dfer_ros.ros.bag_record import record

    return run_bag_tool("bag_record", "recorded", lambda: record(
        args.out, args.topics, args.storage, args.count, args.idle, args.duration, args.ready_file,
        args.receipt_log, ros_args))


if __name__ == "__main__":
    sys.exit(main())
