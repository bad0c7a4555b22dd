"""``dfer-eval``: run the perception pipeline offline and write per-face predictions as JSON Lines.

    dfer-eval --video PATH --out preds.jsonl [--model default] [--backend onnxruntime]
              [--config config/pipeline.yaml] [--max-frames N] [--every N] [--model-option KEY=VALUE]

``--every N`` processes every N-th video frame (stamps stay those of the original frames, so the
tracker and the smoothing see the real time steps). The pieces (model + pipeline construction, the
video source) are functions so other sources (``--bag``) reuse them.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from dfer_ros.perception.config import ConfigError, PipelineConfig

log = logging.getLogger("dfer_ros.cli.eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfer-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("source")
    source.add_argument("--video", type=Path, help="video file readable by OpenCV (stamps = frame index / fps)")
    parser.add_argument("--out", type=Path, help="predictions file to write (JSON Lines, one record per face "
                                                 "per frame); omit to print only the summary")
    parser.add_argument("--model", default="default", help="model name for create_model (default: %(default)s)")
    parser.add_argument("--backend", default="onnxruntime", help="inference backend (default: %(default)s)")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="model builder option, value parsed as YAML (repeatable), "
                             "e.g. with_action_units=false")
    parser.add_argument("--config", type=Path, help="pipeline YAML (default: built-in defaults, "
                                                    "as in config/pipeline.yaml)")
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--every", type=int, default=1, help="process every N-th frame (default: %(default)s)")
    parser.add_argument("--summary-json", type=Path, help="also write the run summary as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from dfer_ros.evaluation.bag_eval import add_bag_arguments

    add_bag_arguments(parser)  # --bag, --image-topic, --mode, labels, metrics, plots
    return parser


def load_pipeline_config(path: Optional[Path]) -> PipelineConfig:
    return PipelineConfig.from_yaml(path) if path is not None else PipelineConfig().validate()


def parse_model_options(items: Sequence[str]) -> dict[str, Any]:
    """["key=value", ...] -> {key: YAML-parsed value}; ValueError naming a malformed item."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"model option {item!r} must look like KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


def build_pipeline(config: PipelineConfig, model_name: str = "default", backend: str = "onnxruntime",
                   **model_options: Any):
    """The model by name and a pipeline around it (shared by the video and bag sources)."""
    from dfer_ros.estimators.factory import create_model
    from dfer_ros.perception.pipeline import PerceptionPipeline

    model = create_model(model_name, backend=backend, **model_options)
    return PerceptionPipeline(config, model)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.bag is not None and args.video is not None:
        parser.error("give one source: --video PATH or --bag PATH")
    if args.video is None and args.bag is None:
        parser.error("a source is required: --video PATH or --bag PATH")
    if args.every < 1:
        parser.error("--every must be >= 1")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be >= 1")
    from dfer_ros.evaluation import bag_eval

    if bag_eval.handles(args):  # a bag, or labels/metrics/plots/output bag
        return bag_eval.run_bag_cli(args)
    from dfer_ros.evaluation.video_eval import VideoError, evaluate_video, video_info

    try:
        video_info(args.video)  # fail fast on a missing/unreadable file, before loading the model
        config = load_pipeline_config(args.config)
        pipeline = build_pipeline(config, args.model, args.backend, **parse_model_options(args.model_option))
        summary = evaluate_video(args.video, pipeline, args.out, args.max_frames, args.every,
                                 progress=not args.quiet)
    except (VideoError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"dfer-eval: error: {exc}", file=sys.stderr)
        return 2
    print(summary.text())
    if args.out is not None:
        print(f"  wrote {summary.faces} records to {args.out}")
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
