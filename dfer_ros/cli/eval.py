"""``dfer eval video`` / ``dfer eval bag``: run the perception pipeline offline and write per-face predictions as
JSON Lines.

    dfer eval video PATH --out preds.jsonl [--model default] [--backend onnxruntime]
              [--pipeline-config config/pipeline.yaml] [--max-frames N] [--every N] [--model-option KEY=VALUE]
    dfer eval bag PATH [--mode offline|live] [--labels-csv F | --labels-va/--labels-expr/--labels-au F]
              [--report metrics.json] [--plots DIR] [--out-bag DIR]

(The old ``dfer-eval --video PATH`` / ``--bag PATH`` form works for one release: ``build_parser()`` with no source.)

A still image (png, jpg, ...) is a one-frame video: its faces get their ids from their only detection
(``tracking.min_hits`` 1), so every face found is reported.

``--every N`` processes every N-th video frame (stamps stay those of the original frames, so the
tracker and the smoothing see the real time steps). ``--model`` follows the spec rule of
``dfer_ros.estimators.loader``. This module only parses arguments and calls ``dfer_ros.evaluation``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.cli.options import add_model_arguments, parse_key_values
from dfer_ros.deprecation import add_deprecated_flag
from dfer_ros.perception.config import ConfigError, load_pipeline_config
from dfer_ros.vocabulary import ABAW_EXPR8

log = logging.getLogger("dfer_ros.cli.eval")

LABEL_ARGS = ("labels_csv", "labels_va", "labels_expr", "labels_au")


def parse_model_options(items: Sequence[str]) -> dict:
    """``--model-option`` items -> builder options (the shared KEY=VALUE parser)."""
    return parse_key_values(items, "model option")


VIDEO_HELP = "video file readable by OpenCV (stamps = frame index / fps), or a still image"
BAG_HELP = "rosbag2 folder (mcap or sqlite3) with an image topic"


def build_parser(source: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of ``dfer eval video`` (``source="video"``: the video is the positional PATH), ``dfer eval bag``
    (``"bag"``), or of the old ``dfer-eval`` (None: ``--video PATH`` or ``--bag PATH``)."""
    parser = argparse.ArgumentParser(prog=f"dfer eval {source}" if source else "dfer-eval",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if source == "video":
        parser.add_argument("video", type=Path, metavar="PATH", help=VIDEO_HELP)
        parser.set_defaults(bag=None)
    elif source == "bag":
        parser.add_argument("bag", type=Path, metavar="PATH", help=BAG_HELP)
        parser.set_defaults(video=None)
    else:
        parser.add_argument_group("source").add_argument("--video", type=Path, help=VIDEO_HELP)
    parser.add_argument("--out", type=Path, help="predictions file to write (JSON Lines, one record per face "
                                                 "per frame); omit to print only the summary")
    add_model_arguments(parser)
    parser.add_argument("--pipeline-config", type=Path, help="pipeline YAML (default: built-in defaults, "
                                                             "as in config/pipeline.yaml)")
    add_deprecated_flag(parser, "--config", "--pipeline-config", "pipeline_config", type=Path)
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--every", type=int, default=1, help="process every N-th frame (default: %(default)s)")
    parser.add_argument("--summary-json", type=Path, help="also write the run summary as JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_deprecated_flag(parser, "--quiet", "--no-progress", "no_progress", store_true=True)
    parser.add_argument("--measured-costs", action="store_true",
                        help="simulate the live node: the compute scheduler learns this machine's wall-clock stage "
                             "costs (results then vary with machine load); default: nominal costs, the same "
                             "records on any machine load")
    _add_bag_arguments(parser, source)
    return parser


def _add_bag_arguments(parser: argparse.ArgumentParser, source: Optional[str]) -> None:
    """The bag options (labels, metrics and plots work for videos too)."""
    bag = parser.add_argument_group("rosbag2 source")
    if source is None:
        bag.add_argument("--bag", type=Path, help=BAG_HELP)
    bag.add_argument("--image-topic", help="raw or compressed image topic (default: the bag's only image topic)")
    bag.add_argument("--mode", choices=("offline", "live"), default="offline",
                     help="offline: frames fed straight to the pipeline (deterministic); live: the bag replayed "
                          "to a node subprocess with /clock (use_sim_time) and its output recorded")
    bag.add_argument("--out-bag", type=Path, help="also write the node's output topics into this new bag")
    bag.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of --out-bag")
    bag.add_argument("--rate", type=float, default=1.0, help="live mode: replay speed factor (default 1)")
    bag.add_argument("--node-params", type=Path, help="live mode: ROS parameters file for the node")
    bag.add_argument("--live-logs", type=Path, help="live mode: keep the node/replay/recorder logs in this folder")
    lab = parser.add_argument_group("labels and metrics")
    lab.add_argument("--labels-csv", type=Path, help="CSV labels: stamp[,face][,expression][,valence,arousal][,AU..]")
    lab.add_argument("--labels-va", type=Path, help="Aff-Wild2 VA file (line i+1 = image message i)")
    lab.add_argument("--labels-expr", type=Path, help="Aff-Wild2 EXPR file")
    lab.add_argument("--labels-au", type=Path, help="Aff-Wild2 AU file")
    lab.add_argument("--label-classes", default=",".join(ABAW_EXPR8),
                     help="expression classes of the labels, in index order (default: the 8 ABAW classes)")
    lab.add_argument("--match-tolerance", type=float,
                     help="max seconds between a label and a prediction (default: half the frame interval)")
    lab.add_argument("--report", type=Path, help="write the metrics as JSON here")
    lab.add_argument("--plots", type=Path, help="write PNG plots into this folder")


def _needs_bag_run(args) -> bool:
    """A bag source, or a video with labels, a report, plots, an output bag or live mode; a plain video
    run stays the simple ``evaluate_video`` path."""
    return args.bag is not None or args.mode == "live" or any(
        getattr(args, k) is not None for k in LABEL_ARGS + ("report", "plots", "out_bag"))


def _pipeline(args):
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.evaluation.video_eval import is_still_image, still_image_config

    config = load_pipeline_config(args.pipeline_config)
    if args.video is not None and is_still_image(args.video):  # one frame: a face is confirmed by its only detection
        config = still_image_config(config)
    return build_pipeline(config, args.model, args.backend, args.checkpoint, measured_costs=args.measured_costs,
                          **parse_model_options(args.model_option))


def _write_summary(args, summary) -> None:
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary.as_dict(), indent=2))


def _run_video(args) -> int:
    from dfer_ros.evaluation.video_eval import VideoError, evaluate_video, video_info
    from dfer_ros.perception.detection import DetectorError  # a missing or truncated detector model

    try:
        video_info(args.video)  # fail fast on a missing/unreadable file, before loading the model
        summary = evaluate_video(args.video, _pipeline(args), args.out, args.max_frames, args.every,
                                 progress=not args.no_progress)
    except (VideoError, ConfigError, DetectorError, ValueError, FileNotFoundError) as exc:
        print(f"dfer eval: error: {exc}", file=sys.stderr)
        return 2
    print(summary.text())
    if args.out is not None:
        print(f"  wrote {summary.faces} records to {args.out}")
    _write_summary(args, summary)
    return 0


def _run_bag(args) -> int:
    """Evaluate (bag offline, bag live, or video), then (with labels) score, print and save; plots on request."""
    from dfer_ros.bag_io import BagError, bag_info
    from dfer_ros.evaluation import bag_eval
    from dfer_ros.evaluation.labels import LabelError, match_predictions
    from dfer_ros.evaluation.predictions import PredictionFormatError, events_path, read_events, read_predictions
    from dfer_ros.evaluation.report import compute_report, format_report, save_report
    from dfer_ros.evaluation.video_eval import VideoError
    from dfer_ros.perception.detection import DetectorError

    want_labels = any(getattr(args, k) is not None for k in LABEL_ARGS)
    if args.labels_csv is not None and any(getattr(args, k) is not None for k in LABEL_ARGS[1:]):
        print("dfer eval: error: give labels either as --labels-csv or as Aff-Wild2 files (--labels-va/-expr/-au), "
              "not both", file=sys.stderr)
        return 2
    tmp = None
    out = args.out
    if out is None and (want_labels or args.plots is not None):
        tmp = tempfile.TemporaryDirectory(prefix="dfer-eval-")
        out = Path(tmp.name) / "predictions.jsonl"
    try:
        if args.video is not None:
            if args.mode == "live":
                raise ValueError("--mode live replays a bag: use dfer eval bag (make one from a video with "
                                 "dfer_ros.bag_io.video_to_bag)")
            from dfer_ros.evaluation.video_eval import video_info

            video_info(args.video)
            run = bag_eval.evaluate_video_run(args.video, _pipeline(args), out, args.out_bag, args.storage,
                                              args.max_frames, args.every, progress=not args.no_progress)
        elif args.mode == "offline":
            bag_info(args.bag)  # fail fast on a bad bag before loading the model
            run = bag_eval.evaluate_bag(args.bag, _pipeline(args), out, args.image_topic, args.out_bag, args.storage,
                                        args.max_frames, args.every, progress=not args.no_progress)
        else:
            from dfer_ros.evaluation.live_eval import evaluate_live

            run = evaluate_live(args.bag, out, args.image_topic, args.out_bag, args.storage, rate=args.rate,
                                model=args.model, backend=args.backend, config=args.pipeline_config,
                                params_file=args.node_params, max_frames=args.max_frames, progress=not args.no_progress,
                                log_dir=args.live_logs)
        print(run.summary.text())
        if args.out is not None:
            print(f"  wrote {run.summary.faces} records to {args.out}")
        if args.out_bag is not None:
            print(f"  wrote the output topics to {args.out_bag}")
        _write_summary(args, run.summary)
        records = list(read_predictions(out)) if out is not None else []
        report = labels = None
        if want_labels:
            classes = [c.strip() for c in args.label_classes.split(",") if c.strip()]
            labels = bag_eval.read_labels(run, args.labels_csv, args.labels_va, args.labels_expr, args.labels_au,
                                          classes)
            matched = match_predictions(labels, records, bag_eval.match_tolerance(run.frame_stamps,
                                                                                  args.match_tolerance))
            report = compute_report(matched)
            print(format_report(report))
            if args.report is not None:
                source = {"bag": str(args.bag), "image_topic": run.topic} if args.bag is not None else \
                    {"video": str(args.video)}
                save_report(report, args.report, {**source, "mode": args.mode, "model": args.model,
                                                  "backend": args.backend})
                print(f"  wrote metrics to {args.report}")
        if args.plots is not None:
            events = read_events(events_path(out)) if out is not None else []
            for path in bag_eval.write_plots(args.plots, records, run, report, labels, events):
                print(f"  plot {path}")
    except (BagError, LabelError, PredictionFormatError, ConfigError, VideoError, DetectorError, ValueError,
            FileNotFoundError) as exc:
        print(f"dfer eval: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def main(argv: Optional[Sequence[str]] = None, source: Optional[str] = None) -> int:
    parser = build_parser(source)
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
    return _run_bag(args) if _needs_bag_run(args) else _run_video(args)


def video_main(argv: Optional[Sequence[str]] = None) -> int:
    """``dfer eval video PATH ...``"""
    return main(argv, "video")


def bag_main(argv: Optional[Sequence[str]] = None) -> int:
    """``dfer eval bag PATH ...``"""
    return main(argv, "bag")


if __name__ == "__main__":
    sys.exit(main())
