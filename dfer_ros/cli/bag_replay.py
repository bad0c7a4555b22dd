"""``dfer bag replay`` / ``dfer bag replay``: replay a rosbag2 bag (mcap or sqlite3) to ROS topics
without the ``ros2`` CLI (``dfer_ros.ros.bag_replay``).

    dfer bag replay BAG [--rate 1.0] [--topics /camera/image_raw ...]
        [--remap /camera/image_raw:=/image] [--wait-subscribers 1] [--no-clock] [--loop N] [--ros-args ...]
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dfer_ros.cli.options import run_bag_tool, split_ros_args
from dfer_ros.deprecation import add_deprecated_flag


def parse_remap(item: str) -> tuple[str, str]:
    """``FROM:=TO`` -> (FROM, TO)."""
    src, sep, dst = item.partition(":=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{item!r}: expected FROM:=TO")
    return src, dst


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfer bag replay", description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("bag", help="rosbag2 folder (mcap or sqlite3)")
    parser.add_argument("--topics", nargs="+", help="topics to replay (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor; 0 = as fast as possible")
    parser.add_argument("--remap", type=parse_remap, nargs="*", default=[], help="FROM:=TO topic renames")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--wait-subscribers", type=int, default=0, help="wait for N subscribers per topic first")
    parser.add_argument("--wait-timeout", type=float, default=30.0)
    parser.add_argument("--loop", type=int, default=1, help="play the bag N times")
    parser.add_argument("--limit", type=int, help="publish at most N messages (per loop)")
    parser.add_argument("--wait-clock-subscribers", type=int, default=0,
                        help="also wait for N /clock subscribers (use_sim_time nodes), sending the start time")
    parser.add_argument("--tail", type=float, default=0.0, help="tick /clock for S bag seconds after the last message")
    parser.add_argument("--publish-log", help="write 'topic bag_ns monotonic_ns' per published message here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_deprecated_flag(parser, "--quiet", "--no-progress", "no_progress", store_true=True)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    own, ros_args = split_ros_args(argv)
    args = build_parser().parse_args(own)
    from dfer_ros.ros.bag_replay import replay_bag

    return run_bag_tool("bag_replay", "published", lambda: replay_bag(
        args.bag, args.topics, args.rate, not args.no_clock, dict(args.remap), args.wait_subscribers,
        args.wait_timeout, loops=args.loop, progress=not args.no_progress, limit=args.limit,
        wait_clock_subscribers=args.wait_clock_subscribers, tail_seconds=args.tail, publish_log=args.publish_log,
        ros_args=ros_args))


if __name__ == "__main__":
    sys.exit(main())
