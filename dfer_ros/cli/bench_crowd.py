"""``dfer bench crowd``: output rate, latency and refresh age with 1-50 real faces,
scheduler on vs budget off (``dfer_ros.bench.crowd_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.crowd_bench import FACES, RESOLUTIONS, markdown, run
from dfer_ros.cli.options import report_result
from dfer_ros.deprecation import add_deprecated_flag
from dfer_ros.perception.config import PipelineConfig


def parse_size(text: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return width, height


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench crowd", description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, nargs="+", default=list(FACES))
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=list(RESOLUTIONS), help="e.g. 640x480")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scene and mode")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds fed before measuring")
    parser.add_argument("--video-frames", type=int, default=300, help="frames of the video section (0 = skip)")
    parser.add_argument("--no-tile-crowds", action="store_true", help="skip the small-face webcam tile crowds")
    parser.add_argument("--pipeline-config", type=Path, help="pipeline YAML (default: built-in defaults)")
    add_deprecated_flag(parser, "--config", "--pipeline-config", "pipeline_config", type=Path)
    parser.add_argument("--budget-ms", type=float, help="override compute.budget_ms of the scheduled mode")
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    base = PipelineConfig.from_yaml(args.pipeline_config) if args.pipeline_config else PipelineConfig()
    if args.budget_ms is not None:
        base.compute.budget_ms = args.budget_ms
    result = run(args.faces, args.sizes, args.seconds, args.warmup, args.video_frames, args.model, args.backend, base,
                 tile_crowds=not args.no_tile_crowds)
    return report_result(result, markdown(result), args.out)


if __name__ == "__main__":
    sys.exit(main())
