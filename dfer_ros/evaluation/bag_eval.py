"""Offline evaluation of a rosbag2 bag: its images fed straight to the pipeline, keyed by bag time.

Every image message of the chosen topic is processed, in bag order, with its header stamp as the
pipeline's time (the bag's receive time when the header stamp is zero). Nothing depends on the CPU
speed: a slow machine gives the same records as a fast one, and the records equal those of
``dfer-eval --video`` on the same frames. It reuses ``video_eval.run_source`` loop and
``predictions`` records; optionally the results are also written as the node's output topics into a
new bag (``ResultsBagWriter``: ``ros.conversions`` + rclpy serialization, imported only then).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from dfer_ros.bag_io import BagError, BagImage, bag_info, choose_image_topic, image_stamps, read_images
from dfer_ros.evaluation.predictions import PredictionWriter
from dfer_ros.evaluation.video_eval import EvalSummary, run_source
from dfer_ros.perception.frames import FrameError, to_bgr8
from dfer_ros.vocabulary import ABAW_EXPR8

log = logging.getLogger(__name__)


@dataclass
class BagFrames:
    """Frame source over a bag's image topic, for ``run_source``; remembers each frame's bag data."""

    bag: Path
    image_topic: Optional[str] = None
    limit: Optional[int] = None
    every: int = 1
    stamps: list[float] = field(default_factory=list)  # stamps of the frames yielded (for labels)
    current: Optional[BagImage] = None

    def __post_init__(self):
        self.info = bag_info(self.bag)
        self.topic = choose_image_topic(self.info, self.image_topic)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")

    @property
    def total(self) -> int:
        n = (self.info.topics[self.topic][1] + self.every - 1) // self.every
        return min(n, self.limit) if self.limit is not None else n

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        yielded = 0
        for item in read_images(self.bag, self.topic):
            if item.index % self.every:
                continue
            if self.limit is not None and yielded >= self.limit:
                break
            try:
                image = to_bgr8(item.image, item.encoding)
            except FrameError as exc:
                log.warning("%s topic %s message %d skipped: %s", self.bag, self.topic, item.index, exc)
                continue
            self.current = item
            self.stamps.append(item.stamp)
            yielded += 1
            yield item.index, item.stamp, image


class _ResultTap:
    """Pipeline stand-in for ``run_source``: keeps each frame's processing time and hands every
    FrameResult to ``sink`` (the output bag) when there is one. Without a bag source (a video) the
    output messages get frame_id "camera" and bag time = stamp."""

    def __init__(self, pipeline, frames: Optional[BagFrames], sink=None):
        self.pipeline, self.frames, self.sink = pipeline, frames, sink
        self.latencies_ms: list[float] = []

    def process(self, frame, stamp: float, encoding: str = "bgr8"):
        result = self.pipeline.process(frame, stamp, encoding)
        if "total" in result.timings_ms:
            self.latencies_ms.append(float(result.timings_ms["total"]))
        if self.sink is not None:
            cur = self.frames.current if self.frames is not None else None
            self.sink.write(result, cur.frame_id if cur else "camera",
                            cur.bag_time_ns if cur else int(round(stamp * 1e9)))
        return result


@dataclass
class BagRun:
    """Outcome of one bag evaluation (offline or live)."""

    summary: EvalSummary
    topic: str
    frame_stamps: list[float]  # stamps of ALL image messages of the topic, in order (Aff-Wild2 line i+1)
    latencies_ms: list[float]  # offline: pipeline time per frame; live: image stamp -> output, per message
    latency_kind: str = "offline processing time per frame"


def evaluate_bag(bag: Union[str, Path], pipeline, out: Optional[Union[str, Path]] = None,
                 image_topic: Optional[str] = None, output_bag: Optional[Union[str, Path]] = None,
                 storage: str = "mcap", max_frames: Optional[int] = None, every: int = 1,
                 progress: bool = True) -> BagRun:
    """Run a bag's images through ``pipeline``; JSONL records to ``out``, node topics to ``output_bag``."""
    frames = BagFrames(Path(bag), image_topic, max_frames, every)
    if frames.info.topics[frames.topic][1] == 0:
        raise BagError(f"{frames.info.path}: topic {frames.topic} has no messages")
    writer = PredictionWriter(out) if out is not None else None
    try:
        if output_bag is not None:
            from dfer_ros.ros.bag_record import ResultsBagWriter

            with ResultsBagWriter(output_bag, storage) as sink:
                tap = _ResultTap(pipeline, frames, sink)
                summary = run_source(frames, tap, writer, str(bag), frames.total, progress)
        else:
            tap = _ResultTap(pipeline, frames)
            summary = run_source(frames, tap, writer, str(bag), frames.total, progress)
    finally:
        if writer is not None:
            writer.close()
    if summary.frames == 0:
        raise BagError(f"{frames.info.path}: no frame of {frames.topic} could be decoded")
    return BagRun(summary, frames.topic, image_stamps(bag, frames.topic), tap.latencies_ms)


# ------------------------------------------------------------------------------------ command line
def add_bag_arguments(parser) -> None:
    """The ``--bag`` options of ``dfer-eval`` (labels, metrics and plots work for bags)."""
    bag = parser.add_argument_group("rosbag2 source (--bag)")
    bag.add_argument("--bag", type=Path, help="rosbag2 folder (mcap or sqlite3) with an image topic")
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


def _tolerance(stamps: list[float], given: Optional[float]) -> float:
    if given is not None:
        return float(given)
    if len(stamps) > 1:
        gaps = np.diff(np.asarray(stamps, np.float64))
        gaps = gaps[gaps > 0]
        if len(gaps):
            return float(np.median(gaps)) / 2
    return 0.02


def handles(args) -> bool:
    """Whether ``dfer-eval`` hands these arguments to ``run_bag_cli``: a bag source, or a video with
    labels, a report, plots, an output bag or live mode (the plain video run stays in ``video_eval``)."""
    return args.bag is not None or args.mode == "live" or any(
        getattr(args, k) is not None for k in ("labels_csv", "labels_va", "labels_expr", "labels_au", "report",
                                               "plots", "out_bag"))


def _video_run(args, out) -> BagRun:
    """A video through the pipeline (``video_eval.evaluate_video``), with per-frame times and an optional output bag."""
    from dfer_ros.cli.eval import build_pipeline, load_pipeline_config, parse_model_options
    from dfer_ros.evaluation.video_eval import evaluate_video, video_info

    fps, count, _, _ = video_info(args.video)
    rate = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
    pipeline = build_pipeline(load_pipeline_config(args.config), args.model, args.backend,
                              **parse_model_options(args.model_option))

    def run(sink=None) -> BagRun:
        tap = _ResultTap(pipeline, None, sink)
        summary = evaluate_video(args.video, tap, out, args.max_frames, args.every, progress=not args.quiet)
        return BagRun(summary, "", [i / rate for i in range(count)], tap.latencies_ms)

    if args.out_bag is None:
        return run()
    from dfer_ros.ros.bag_record import ResultsBagWriter

    with ResultsBagWriter(args.out_bag, args.storage) as sink:
        return run(sink)


def run_bag_cli(args) -> int:
    """``dfer-eval --bag ...`` (or ``--video`` with labels/report/plots/output bag): evaluate, then (with
    labels) score, print and save; plots on request."""
    import json
    import sys
    import tempfile

    from dfer_ros.evaluation.labels import LabelError, match_predictions, read_affwild2_labels, read_csv_labels
    from dfer_ros.evaluation.predictions import PredictionFormatError, read_predictions
    from dfer_ros.evaluation.report import compute_report, format_report, save_report
    from dfer_ros.evaluation.video_eval import VideoError
    from dfer_ros.perception.config import ConfigError

    want_labels = any(getattr(args, k) is not None for k in ("labels_csv", "labels_va", "labels_expr", "labels_au"))
    if args.labels_csv is not None and any(getattr(args, k) is not None for k in ("labels_va", "labels_expr",
                                                                                  "labels_au")):
        print("dfer-eval: error: give labels either as --labels-csv or as Aff-Wild2 files (--labels-va/-expr/-au), "
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
                raise ValueError("--mode live replays a bag: use --bag (make one from a video with "
                                 "dfer_ros.bag_io.video_to_bag)")
            run = _video_run(args, out)
        elif args.mode == "offline":
            from dfer_ros.cli.eval import build_pipeline, load_pipeline_config, parse_model_options

            bag_info(args.bag)  # fail fast on a bad bag before loading the model
            config = load_pipeline_config(args.config)
            pipeline = build_pipeline(config, args.model, args.backend, **parse_model_options(args.model_option))
            run = evaluate_bag(args.bag, pipeline, out, args.image_topic, args.out_bag, args.storage,
                               args.max_frames, args.every, progress=not args.quiet)
        else:
            from dfer_ros.evaluation.live_eval import evaluate_live

            run = evaluate_live(args.bag, out, args.image_topic, args.out_bag, args.storage, rate=args.rate,
                                model=args.model, backend=args.backend, config=args.config,
                                params_file=args.node_params, max_frames=args.max_frames, progress=not args.quiet,
                                log_dir=args.live_logs)
        print(run.summary.text())
        if args.out is not None:
            print(f"  wrote {run.summary.faces} records to {args.out}")
        if args.out_bag is not None:
            print(f"  wrote the output topics to {args.out_bag}")
        if args.summary_json is not None:
            args.summary_json.parent.mkdir(parents=True, exist_ok=True)
            args.summary_json.write_text(json.dumps(run.summary.as_dict(), indent=2))
        records = list(read_predictions(out)) if out is not None else []
        report = None
        labels = None
        if want_labels:
            classes = [c.strip() for c in args.label_classes.split(",") if c.strip()]
            if args.labels_csv is not None:
                labels = read_csv_labels(args.labels_csv, classes)
            else:
                labels = read_affwild2_labels(run.frame_stamps, args.labels_va, args.labels_expr, args.labels_au)
                labels.expr_classes = classes
            matched = match_predictions(labels, records, _tolerance(run.frame_stamps, args.match_tolerance))
            report = compute_report(matched)
            print(format_report(report))
            if args.report is not None:
                source = {"bag": str(args.bag), "image_topic": run.topic} if args.bag is not None else \
                    {"video": str(args.video)}
                save_report(report, args.report, {**source, "mode": args.mode, "model": args.model,
                                                  "backend": args.backend})
                print(f"  wrote metrics to {args.report}")
        if args.plots is not None:
            for path in write_plots(args.plots, records, run, report, labels):
                print(f"  plot {path}")
    except (BagError, LabelError, PredictionFormatError, ConfigError, VideoError, ValueError,
            FileNotFoundError) as exc:
        print(f"dfer-eval: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def write_plots(folder: Path, records: list[dict], run: BagRun, report: Optional[dict], labels=None) -> list[Path]:
    """VA trajectory, expression timeline, latency histogram, and the confusion matrix when scored."""
    from dfer_ros.evaluation.affect_plots import plot_expression_timeline, plot_latency_histogram, plot_va_trajectory
    from dfer_ros.evaluation.plots import plot_confusion_matrix

    folder = Path(folder)
    paths = [plot_va_trajectory(records, folder / "va_trajectory.png")]
    truth = None
    if labels is not None and labels.expr is not None:
        truth = (labels.stamps, labels.expr, list(labels.expr_classes))
    paths.append(plot_expression_timeline(records, folder / "expression_timeline.png", truth))
    paths.append(plot_latency_histogram(run.latencies_ms, folder / "latency_histogram.png",
                                        f"{run.latency_kind} ({len(run.latencies_ms)} frames)"))
    if report and report.get("expression"):
        e = report["expression"]
        paths.append(plot_confusion_matrix(np.asarray(e["confusion_matrix"]), e["classes"],
                                           folder / "confusion_matrix.png",
                                           title=f"WAR {e['war']:.3f}  UAR {e['uar']:.3f}  F1 {e['macro_f1']:.3f}"))
    return paths
