"""``dfer bench throughput``: per-stage timings of the perception pipeline on the sample video (1 and 4 faces,
native and 640x480), label flips with and without aggregation, and a memory run; see
``dfer_ros.bench.perception_bench`` for what is measured.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2

from dfer_ros.bench.perception_bench import format_table, load_frames, run_memory, run_scenario, tile2x2
from dfer_ros.cli.options import add_model_arguments, parse_key_values
from dfer_ros.deprecation import add_deprecated_flag
from dfer_ros.perception.config import PipelineConfig


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="video frames per scenario (default %(default)s)")
    parser.add_argument("--memory-frames", type=int, default=10_000, help="frames of the memory run (0 = skip)")
    add_model_arguments(parser)
    parser.add_argument("--pipeline-config", type=Path, help="pipeline YAML (default: built-in defaults)")
    add_deprecated_flag(parser, "--config", "--pipeline-config", "pipeline_config", type=Path)
    parser.add_argument("--detect-every", type=int, help="override detection.every for all scenarios")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from dfer_ros.assets import sample_video
    from dfer_ros.estimators.loader import load_model

    config = PipelineConfig.from_yaml(args.pipeline_config) if args.pipeline_config else PipelineConfig()
    if args.detect_every:
        config.detection.every = args.detect_every
    config.validate()
    model = load_model(args.model, args.backend, args.checkpoint,
                       **parse_key_values(args.model_option, "model option"))
    native = load_frames(sample_video(), args.frames)
    vga = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR) for f in native]
    vga4 = [tile2x2(cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA)) for f in native]
    results = [
        run_scenario("native 1 face", native, model, config, 1, flips=True),
        run_scenario("native 2x2 4 faces", [tile2x2(f) for f in native], model, config, 4),
        run_scenario("640x480 1 face", vga, model, config, 1),
        run_scenario("640x480 2x2 4 faces", vga4, model, config, 4),
    ]
    print(f"perception benchmark: model {model.name} [{model.backend}], detector {config.detection.detector} "
          f"(max_side {config.detection.max_side}, every {config.detection.every}), {args.frames} frames of cap12, "
          f"{os.cpu_count()} CPU(s)")
    print(format_table(results))
    flips = results[0]
    print(f"label flips per 100 frames (native 1 face): aggregation on {flips.flips_per_100_on:.2f}, "
          f"off {flips.flips_per_100_off:.2f}")
    one, four = results[2], results[3]
    print(f"targets at 640x480: 1 face {one.fps:.1f} fps (target 30: {'met' if one.fps >= 30 else 'NOT met'}), "
          f"4 faces {four.fps:.1f} fps (target 15: {'met' if four.fps >= 15 else 'NOT met'})")
    memory = None
    if args.memory_frames > 0:
        memory = run_memory(model, config, args.memory_frames)
        trace = ", ".join(f"{i}: {mb:.0f}" for i, mb in memory.rss_mb)
        print(f"memory over {memory.frames} synthetic frames ({memory.fps:.1f} fps): RSS MiB by frame {trace}; "
              f"{memory.ids_issued} face ids issued, at most {memory.max_live_tracks} live tracks and "
              f"{memory.max_buffers} buffers, {memory.final_buffers} buffers at the end")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": model.name, "backend": model.backend, "config": config.to_dict(),
                   "frames": args.frames, "cpus": os.cpu_count(),
                   "scenarios": [r.__dict__ for r in results],
                   "memory": memory.__dict__ if memory else None}
        args.out.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
