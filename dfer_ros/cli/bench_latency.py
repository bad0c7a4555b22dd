"""``dfer bench latency``: end-to-end latency of dfer_node, image stamp -> result received in another process
(``dfer_ros.bench.latency_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dfer bench latency", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON report path")
    p.add_argument("--seconds", type=float, default=20.0, help="measured duration (after warm-up)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds published before measuring")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--model", default="default", help="the node's model parameter (a name, folder or config)")
    p.add_argument("--checkpoint", help="the node's checkpoint parameter (with a config YAML)")
    p.add_argument("--reliability", default="best_effort", choices=("best_effort", "reliable"),
                   help="QoS of the image topic (node side; the publisher here is reliable)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, e.g. --param detection.every:=2 (repeatable)")
    p.add_argument("--faces", type=int, default=1, help="faces in the image: 1 or a square number (a grid); 0: an empty room")
    p.add_argument("--competitors", type=int, default=0,
                   help="busy processes beside the node (one per core: a loaded robot)")
    args = p.parse_args(argv)
    from dfer_ros.bench.latency_bench import run

    report = run(args.out, args.seconds, args.warmup, args.rate, args.width, args.height, args.backend, args.model,
                 args.checkpoint, args.reliability, args.param, args.faces, args.competitors)
    return 0 if report.get("results") else 1


if __name__ == "__main__":
    sys.exit(main())
