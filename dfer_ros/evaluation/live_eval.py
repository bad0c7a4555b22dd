"""Live evaluation of a bag: replayed at recorded pace to a RUNNING node, its output recorded.

Unlike offline mode this measures what a robot would see: the node (``dfer_ros.ros.node``, started
with ``use_sim_time:=true``) processes only the newest image when it falls behind, so on a slow
machine some frames get no output, and the latency includes transport and queuing. Three
subprocesses, all with ``local_ros_env`` (DDS on this host, a private domain id):

  1. the node, image topic remapped from the bag's (raw -> ``image``, compressed -> ``image/compressed``)
  2. ``bag_record`` on the node's five output topics (sim time; it signals once all are matched, i.e.
     the node has loaded its model and created its publishers)
  3. ``bag_replay`` of the image topic with ``/clock``, after the node subscribed

The recorded ``faces/affect`` messages become the same JSONL records as offline mode
(``face_record`` fields; ``frame_expression`` is null because messages carry only the smoothed output), and
the recorded ``faces/expression_events`` the same ``<name>.events.jsonl`` records.
Latency per output = recorder receipt minus replay publish of its image (CLOCK_MONOTONIC, one host).
This module starts processes but imports no rclpy itself.
"""
from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from dfer_ros.evaluation.bag_eval import BagRun
from dfer_ros.bag_io import COMPRESSED, BagError, bag_info, choose_image_topic, image_stamps, read_messages
from dfer_ros.evaluation.predictions import PredictionWriter
from dfer_ros.evaluation.video_eval import EvalSummary
from dfer_ros.perception.events import OFFSET, ONSET
from dfer_ros.ros.processes import node_command, start_python, stop, wait_for_exit

log = logging.getLogger(__name__)

AFFECT_TOPIC = "/faces/affect"
EVENTS_TOPIC = "/faces/expression_events"
OUTPUT_TOPICS = ["/faces/affect", "/faces/expression", "/faces/valence_arousal", "/faces/action_units",
                 "/faces/tracked", EVENTS_TOPIC]


def affect_records(msg, frame: int) -> list[dict[str, Any]]:
    """JSONL records (``predictions.face_record`` fields) of one deserialized ``FaceAffectArray``."""
    out = []
    for f in msg.faces:
        stamp = f.header.stamp.sec + f.header.stamp.nanosec * 1e-9
        expr, va, aus = f.expression, f.valence_arousal, f.action_units
        has_va = float(va.confidence) > 0.0
        out.append({
            "frame": int(frame),
            "stamp": round(float(stamp), 6),
            "face_id": str(f.face_id),
            "person_id": str(f.person_id),
            "bbox": [float(f.roi.x_offset), float(f.roi.y_offset), float(f.roi.width), float(f.roi.height)],
            "detection_score": round(float(f.detection_score), 4),
            "detected": bool(f.detected),
            "expression": str(expr.expression),
            "expression_confidence": round(float(expr.confidence), 5),
            "expression_probs": {str(k): round(float(p), 5) for k, p in zip(expr.labels, expr.probabilities)},
            "frame_expression": None,
            "valence": float(va.valence) if has_va else None,
            "arousal": float(va.arousal) if has_va else None,
            "action_units": {str(k): round(float(p), 5) for k, p in zip(aus.names, aus.probabilities)},
            "window_frames": int(f.window_frames),
            "window_seconds": round(float(f.window_seconds), 4),
            "warmed_up": bool(f.warmed_up),
            "estimate_age": float(expr.estimate_age) if expr.estimate_age >= 0 else None,
            "action_units_age": float(aus.estimate_age) if aus.estimate_age >= 0 else None,
            "abstained": bool(f.abstained),
            "abstain_reason": str(f.abstain_reason),
        })
    return out


def records_from_output_bag(output_bag, frame_stamps: list[float],
                            writer: Optional[PredictionWriter] = None) -> tuple[list[dict], list[float]]:
    """(records, stamp of each affect message in bag order) of a bag recorded from the node."""
    index = {round(s, 6): i for i, s in enumerate(frame_stamps)}
    records, stamps = [], []
    for _, _, _, msg in read_messages(output_bag, [AFFECT_TOPIC]):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        stamps.append(stamp)
        for record in affect_records(msg, index.get(round(stamp, 6), -1)):
            records.append(record)
            if writer is not None:
                writer.write(record)
    return records, stamps


def _seconds(time_msg) -> float:
    return round(time_msg.sec + time_msg.nanosec * 1e-9, 6)


def event_records(msg, frame_of: dict[float, int]) -> list[dict[str, Any]]:
    """Event records (``predictions.event_record`` fields, with the frame of the image that produced each) of
    one deserialized ``ExpressionEventArray``."""
    out = []
    for e in msg.events:
        kind = OFFSET if e.kind == e.OFFSET else ONSET
        stamp = _seconds(e.header.stamp)
        out.append({"frame": frame_of.get(stamp, -1), "kind": kind, "face_id": str(e.face_id),
                    "person_id": str(e.person_id), "label": str(e.expression), "episode": int(e.episode),
                    "stamp": stamp, "onset": _seconds(e.onset), "apex": _seconds(e.apex),
                    "offset": _seconds(e.offset) if kind == OFFSET else None,
                    "duration": round(float(e.duration), 4), "peak_probability": round(float(e.peak_probability), 4),
                    "mean_intensity": round(float(e.mean_intensity), 4), "end_reason": str(e.end_reason)})
    return out


def events_from_output_bag(output_bag, frame_stamps: list[float],
                           writer: Optional[PredictionWriter] = None) -> list[dict]:
    """The expression events a node published while recorded (none when the topic never carried one)."""
    if EVENTS_TOPIC not in bag_info(output_bag).topics:
        return []
    frame_of = {round(s, 6): i for i, s in enumerate(frame_stamps)}
    events = []
    for _, _, _, msg in read_messages(output_bag, [EVENTS_TOPIC]):
        for record in event_records(msg, frame_of):
            events.append(record)
            if writer is not None:
                writer.write_event(record)
    return events


def wall_latencies(frame_stamps: list[float], output_stamps: list[float], published_log: Path,
                   receipts_log: Path) -> list[float]:
    """End-to-end latency (ms) of each output: recorder receipt minus replay publish of its image, both
    CLOCK_MONOTONIC (one host). The k-th affect receipt is the k-th affect message in bag order (the node
    publishes in order and the recorder's sim-time bag times are non-decreasing)."""
    published = [int(line.split()[2]) for line in published_log.read_text().splitlines() if line.strip()] \
        if published_log.exists() else []
    received = [int(line.split()[1]) for line in receipts_log.read_text().splitlines()
                if line.startswith(AFFECT_TOPIC + " ")] if receipts_log.exists() else []
    index = {round(s, 6): i for i, s in enumerate(frame_stamps)}
    out = []
    for stamp, recv_ns in zip(output_stamps, received):
        i = index.get(round(stamp, 6))
        if i is not None and i < len(published):
            out.append((recv_ns - published[i]) * 1e-6)
    return out


class _Processes:
    """The subprocesses of one live run: each logs to ``<logs>/<name>.log``; all are stopped (SIGINT, then
    kill) when the block ends, whatever happened."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "_Processes":
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(list(self.procs.values())):
            self.stop(proc)

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        self.procs[name] = start_python(args, self.env, self.logs / f"{name}.log")
        return self.procs[name]

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
        stop(proc, timeout)


def node_arguments(model: str, backend: str, compressed: bool, config: Optional[Path] = None,
                   params_file: Optional[Path] = None, extra: Optional[list[str]] = None) -> list[str]:
    """``python -m dfer_ros.ros.node`` arguments for a live run (sim time, model, compressed input)."""
    params = {"use_sim_time": True, "model": model, "backend": backend, "subscribe_compressed": compressed}
    if config is not None:
        params["pipeline_config"] = Path(config).resolve()
    return node_command(params=params, params_files=[params_file] if params_file is not None else (),
                        extra=list(extra or []))


def evaluate_live(bag: Union[str, Path], out: Optional[Union[str, Path]] = None, image_topic: Optional[str] = None,
                  output_bag: Optional[Union[str, Path]] = None, storage: str = "mcap", rate: float = 1.0,
                  model: str = "default", backend: str = "onnxruntime", config: Optional[Path] = None,
                  params_file: Optional[Path] = None, max_frames: Optional[int] = None, progress: bool = True,
                  startup_timeout: float = 180.0, drain_seconds: float = 3.0, env: Optional[dict] = None,
                  log_dir: Optional[Path] = None, extra_node_args: Optional[list[str]] = None) -> BagRun:
    """Replay ``bag`` to a node subprocess, record its outputs, write records; see the module docstring.

    ``env``: the environment of the subprocesses (default ``local_ros_env()``); ``log_dir`` keeps their
    logs (default: a temporary folder, removed at the end; errors quote the log's last lines).
    """
    from dfer_ros.ros.environment import local_ros_env

    if rate <= 0:
        raise BagError("live mode needs --rate > 0 (the node keeps up with real time or drops frames)")
    info = bag_info(bag)
    topic = choose_image_topic(info, image_topic)
    compressed = info.topics[topic][0] == COMPRESSED
    stamps = image_stamps(bag, topic)
    if not stamps:
        raise BagError(f"{info.path}: topic {topic} has no messages")
    sent = min(max_frames, len(stamps)) if max_frames is not None else len(stamps)
    work = Path(tempfile.mkdtemp(prefix="dfer-live-"))
    logs = Path(log_dir) if log_dir is not None else work
    logs.mkdir(parents=True, exist_ok=True)
    rec_bag = Path(output_bag) if output_bag is not None else work / "output_bag"
    ready = work / "recorder.ready"
    t_start = time.perf_counter()
    try:
        with _Processes(dict(env) if env is not None else local_ros_env(), logs) as procs:
            node = procs.start("node", node_arguments(model, backend, compressed, config, params_file,
                                                      extra_node_args))
            recorder = procs.start("record", ["-m", "dfer_ros.ros.bag_record", "--out", str(rec_bag), "--storage",
                                              storage, "--topics", *OUTPUT_TOPICS, "--ready-file", str(ready),
                                              "--receipt-log", str(work / "receipts.log"),
                                              "--ros-args", "-p", "use_sim_time:=true"])
            deadline = time.monotonic() + startup_timeout
            while not ready.exists():  # the node has loaded its model and the recorder matched its outputs
                for name, proc in (("node", node), ("record", recorder)):
                    if proc.poll() is not None:
                        raise BagError(f"live evaluation: the {name} process exited with {proc.returncode} "
                                       f"before the node was ready:\n{procs.tail(name)}")
                if time.monotonic() > deadline:
                    raise BagError(f"live evaluation: the node's outputs did not appear within "
                                   f"{startup_timeout:.0f} s (model loading?); node log:\n{procs.tail('node')}")
                time.sleep(0.1)
            target = "/image/compressed" if compressed else "/image"
            replay_args = ["-m", "dfer_ros.ros.bag_replay", str(info.path), "--topics", topic, "--rate", str(rate),
                           "--remap", f"{topic}:={target}", "--wait-subscribers", "1", "--wait-timeout", "120",
                           "--limit", str(sent),
                           # node and recorder run on sim time: both must have the clock before frame 0
                           "--wait-clock-subscribers", "2", "--tail", str(drain_seconds * rate),
                           "--publish-log", str(work / "published.log")]
            replay = procs.start("replay", replay_args + ([] if progress else ["--no-progress"]))
            code = wait_for_exit(replay, (stamps[sent - 1] - stamps[0]) / rate + 60.0)
            if code is None:
                raise BagError(f"live evaluation: replay did not finish in time:\n{procs.tail('replay')}")
            if code != 0:
                raise BagError(f"live evaluation: replay failed ({code}):\n{procs.tail('replay')}")
            # replay ticked /clock for drain_seconds after the last frame: the last outputs are in; stop recording
            time.sleep(0.5)
            procs.stop(recorder)
            if recorder.returncode not in (0, -signal.SIGINT):
                raise BagError(f"live evaluation: recorder failed ({recorder.returncode}):\n{procs.tail('record')}")
        wall = time.perf_counter() - t_start
        writer = PredictionWriter(out) if out is not None else None
        try:
            records, output_stamps = records_from_output_bag(rec_bag, stamps, writer)
            events = events_from_output_bag(rec_bag, stamps, writer)
        finally:
            if writer is not None:
                writer.close()
        messages = len(output_stamps)
        latencies = wall_latencies(stamps, output_stamps, work / "published.log", work / "receipts.log")
        if messages == 0:
            raise BagError(f"live evaluation: the node published nothing for {sent} replayed images; node log:\n"
                           f"{procs.tail('node')}\nreplay log:\n{procs.tail('replay')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    labels: dict[str, int] = defaultdict(int)
    for r in records:
        labels[r["expression"] or "-"] += 1
    summary = EvalSummary(source=str(bag), frames=messages, skipped_frames=max(sent - messages, 0),
                          frames_with_faces=len({r["stamp"] for r in records}), faces=len(records),
                          tracks=len({r["face_id"] for r in records}), wall_seconds=wall,
                          fps=messages / wall if wall > 0 else 0.0, labels=dict(labels),
                          abstained=sum(bool(r.get("abstained")) for r in records),
                          events=sum(e["kind"] == ONSET for e in events),
                          mean_stage_ms={"end_to_end_latency": float(np.mean(latencies))} if latencies else {})
    log.info("live: %d of %d images got an output (the rest were dropped as stale by the node)", messages, sent)
    return BagRun(summary, topic, stamps, latencies,
                  f"live latency, image published to output received (rate {rate:g})")
