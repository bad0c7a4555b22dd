"""``dfer bench detector compare | memory | regions``: face detector recall and speed, memory
over many calls, and detection in regions vs the whole frame, on real faces (``dfer_ros.bench.detector_bench``).
Not a test: it prints numbers."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfer bench detector",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="recall and speed on real faces")
    p.add_argument("--detectors", default="centerface,yunet,blazeface,haar", help="comma-separated detector names")
    p.add_argument("--video-frames", type=int, default=60, help="frames sampled from each video")
    p = sub.add_parser("memory", help="RSS over many detector calls")
    p.add_argument("--detector", default="centerface")
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--every", type=int, default=10_000)
    p.add_argument("--max-side", type=int, default=320, help="detection size (memory per call does not depend on it)")
    p.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    p = sub.add_parser("regions", help="detection in regions around the faces vs the whole frame every frame")
    p.add_argument("--frames", type=int, default=2000, help="frames of each webcam video")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from dfer_ros.bench.detector_bench import compare, memory_run, regions_vs_whole_frame

    if args.command == "compare":
        compare([n for n in args.detectors.split(",") if n], args.video_frames)
    elif args.command == "regions":
        regions_vs_whole_frame(args.frames)
    else:
        run = memory_run(args.detector, args.calls, args.every, max_side=args.max_side)
        if args.out:
            args.out.write_text(json.dumps(asdict(run), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
