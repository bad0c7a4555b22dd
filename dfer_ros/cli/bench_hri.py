"""``dfer bench hri [angles|walk|cost ...]``: the REP-155 producer's measurements (``dfer_ros.bench.hri_bench``):
head-pose angles behind the engagement defaults, the engagement levels of a face turned to the camera and away,
the node's added cost per image with hri.enabled at 1, 4 and 25 faces, and the running node's CPU share and topic
rates with the producer off, on without subscribers and on with every topic subscribed. Not a test: it prints
numbers."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.assets import REPO_ROOT

PARTS = ("angles", "walk", "cost", "node")
HRI_PREFIX = REPO_ROOT / ".venv" / "opt" / "hri_msgs"  # where `make setup` builds hri_msgs


def _reexec_with_hri_msgs(prefix: Path, argv: Sequence[str]) -> None:
    """Start this command again with ``prefix``'s hri_msgs importable (its libraries are found only through
    LD_LIBRARY_PATH, read at process start), unless hri_msgs is importable already."""
    from dfer_ros.ros.hri_publisher import hri_msgs_available

    if hri_msgs_available() or os.environ.get("DFER_HRI_REEXEC") or not prefix.is_dir():
        return
    site = next(iter(sorted(prefix.glob("lib/python3*/site-packages"))), None)
    if site is None:
        return
    env = dict(os.environ, DFER_HRI_REEXEC="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(prefix / "lib"), env.get("LD_LIBRARY_PATH", "")]))
    os.execve(sys.executable, [sys.executable, "-m", "dfer_ros.cli.bench_hri", *argv], env)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench hri", description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("out/hri/hri.json"), help="JSON report")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 4, 25], help="face counts of the cost part")
    parser.add_argument("--frames", type=int, default=100, help="images timed per cost case")
    parser.add_argument("--node-faces", type=int, nargs="+", default=[1, 4], help="face counts of the node part")
    parser.add_argument("--seconds", type=float, default=15.0, help="node: measured seconds per case")
    parser.add_argument("--london-step", type=int, default=3, help="angles: every k-th London person")
    parser.add_argument("--hri-prefix", type=Path, default=HRI_PREFIX, help="hri_msgs install prefix")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = args.parts or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    if "cost" in parts or "node" in parts:
        _reexec_with_hri_msgs(args.hri_prefix, argv)
    from dfer_ros.bench import hri_bench

    report: dict = {}
    if "angles" in parts:
        report["angles"] = hri_bench.measure_angles(step=args.london_step)
    if "walk" in parts:
        report["walk"] = hri_bench.measure_walk()
        for walk in report["walk"]["walks"]:
            print(json.dumps(walk))
    if "cost" in parts:
        report["cost"] = hri_bench.measure_cost(args.faces, args.frames)
        print(hri_bench.markdown(report["cost"]))
    if "node" in parts:
        report["node"] = hri_bench.measure_node(args.node_faces, args.seconds, out_dir=args.out.parent / "node")
        print(hri_bench.node_markdown(report["node"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out} (load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
