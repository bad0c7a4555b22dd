"""``make demo``: the real face video through the real node, results received in this separate process.

Starts ``dfer_node`` and ``video_publisher`` as subprocesses (host-local DDS from ``environment.py``, logs
under ``assets.logs_dir()/demo``: build/ros_log/demo in a checkout), publishes ``assets.sample_video()`` once
at its frame rate, prints one summary line per second (face id, label, valence/arousal, node rates), and when the video is over writes to
``--out``:
  * ``annotated.mp4``  every frame of the video with the newest result at its stamp (boxes, ids, label, VA)
  * ``timeline.png``   expression, valence and arousal per face over time
  * ``messages.jsonl`` every received ``faces/affect`` message as JSON
  * ``events.jsonl``   every received expression event (``faces/expression_events``): episode onsets/offsets
  * ``summary.json``   counts, rates and the label histogram per face
then stops the node (SIGINT, exit code checked) and exits 0.
"""
from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Optional

from dfer_ros.assets import logs_dir, source_checkout
from dfer_ros.ros.environment import apply_local_ros_env, pick_domain_id
from dfer_ros.ros.processes import start_node, start_python, stop


def _start(module: str, ros_args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    return start_python(["-m", module, "--ros-args", *ros_args], env, log_path, cwd=source_checkout())


def _stop(proc: subprocess.Popen, name: str, timeout: float = 15.0) -> int:
    code, killed = stop(proc, timeout)
    if killed:
        print(f"demo: {name} did not stop after SIGINT within {timeout:.0f} s; killed it", file=sys.stderr)
    return code


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(t for t in text if not t.startswith(("W0000", "I0000")))[-4000:] if text else "(empty log)"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dfer demo", description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    checkout = source_checkout()  # installed (colcon prefix): out/demo under the current folder
    p.add_argument("--out", type=Path, default=(checkout or Path()) / "out" / "demo",
                   help="output folder (default out/demo in the checkout, else under the current folder)")
    p.add_argument("--video", type=Path, default=None, help="video file (default: the sample face video)")
    p.add_argument("--max-frames", type=int, default=0, help="publish only this many frames (0: all)")
    p.add_argument("--backend", default="onnxruntime", help="node backend (default onnxruntime)")
    p.add_argument("--model", default="default", help="node model (default: the embedded default model)")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    log_dir = logs_dir() / "demo"
    env = apply_local_ros_env(domain_id=pick_domain_id(), log_dir=log_dir)
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dfer_ros.msg import ExpressionEventArray
    from dfer_ros.ros.conversions import affect_array_to_dict, event_to_dict, image_to_array, stamp_to_seconds
    from dfer_ros.ros.node_listener import NodeListener
    from dfer_ros.ros.session import ros_session

    from dfer_ros import assets

    try:
        video = args.video or assets.sample_video()
    except assets.AssetError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    if not video.is_file():
        print(f"demo: video {video} not found", file=sys.stderr)
        return 1
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    topic = "/demo/camera/image"
    node_log, pub_log = log_dir / "dfer_node.out", log_dir / "video_publisher.out"
    results: list[dict] = []
    image_stamps: list[float] = []
    result_stamps: list[float] = []
    diag: dict[str, str] = {}
    t_start = time.monotonic()

    with ros_session([]):
        listener = rclpy.create_node("dfer_demo_listener")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        annotated = AnnotatedVideo(out / "annotated.mp4", _video_fps(video))

        def on_result(msg):
            results.append(affect_array_to_dict(msg))
            result_stamps.append(results[-1]["stamp"])

        def on_image(msg):
            image_stamps.append(stamp_to_seconds(msg.header.stamp))
            annotated.add(image_stamps[-1], image_to_array(msg)[0].copy())

        listener.create_subscription(Image, topic, on_image, reliable)
        events: list[dict] = []

        def on_events(msg):
            for event in msg.events:
                events.append(event_to_dict(event))
                e = events[-1]
                t = (e["stamp"] - image_stamps[0]) if image_stamps else 0.0
                print(f"t={t:5.1f}s  event: {e['face_id']} {e['expression']} {e['kind']}"
                      + (f" ({e['duration']:.2f} s, peak {e['peak_probability']:.2f})" if e["kind"] == "offset" else ""),
                      flush=True)

        listener.create_subscription(ExpressionEventArray, "/demo/faces/expression_events", on_events, reliable)
        counts: list[tuple[int, ...]] = []  # (received, processed, dropped_stale, bad_images) per diagnostics msg

        def on_diagnostics(values):
            diag.update(values)
            counts.append(tuple(int(diag.get(k, 0)) for k in ("received", "processed", "dropped_stale", "bad_images")))

        NodeListener(listener, "/demo", on_result, on_diagnostics)
        node = start_node(env, node_log, cwd=source_checkout(), namespace="/demo", remaps={"image": topic},
                          params={"model": args.model, "backend": args.backend, "image_qos.reliability": "reliable"})
        publisher = None
        code = 1
        try:
            print(f"demo: starting dfer_node (log {node_log}) ...", flush=True)
            deadline = time.monotonic() + args.timeout

            def spin_until(cond, what, limit):
                end = min(deadline, time.monotonic() + limit)
                while not cond():
                    if node.poll() is not None:
                        raise RuntimeError(f"dfer_node exited with code {node.returncode} while waiting for {what}:\n"
                                           f"{_tail(node_log)}")
                    if time.monotonic() > end:
                        raise RuntimeError(f"timed out waiting for {what}:\n{_tail(node_log)}")
                    rclpy.spin_once(listener, timeout_sec=0.1)

            spin_until(lambda: diag.get("state") == "active", "the node to become active", 120)
            print(f"demo: node active ({diag.get('model')}); publishing {video.name}", flush=True)
            publisher = _start("dfer_ros.ros.video_publisher",
                               ["-p", f"video:={video}", "-p", "reliable:=true", "-p", "depth:=50",
                                "-p", "wait_for_subscribers:=2",
                                "-p", f"max_frames:={args.max_frames}", "-r", f"image:={topic}"], env, pub_log)
            next_print = time.monotonic() + 1.0
            started = time.monotonic()
            while publisher.poll() is None:
                if not image_stamps and time.monotonic() - started > 30:
                    raise RuntimeError("no image arrived from video_publisher within 30 s: DDS shared-memory transport "
                                       f"problem? (ls /dev/shm/fastrtps_*; logs in {log_dir})\n{_tail(pub_log)}")
                if node.poll() is not None:
                    raise RuntimeError(f"dfer_node exited with code {node.returncode}:\n{_tail(node_log)}")
                rclpy.spin_once(listener, timeout_sec=0.05)
                annotated.flush(results, result_stamps)
                if time.monotonic() > deadline:
                    raise RuntimeError("demo timed out while the video was playing")
                if time.monotonic() >= next_print:
                    next_print += 1.0
                    print(_summary_line(results, image_stamps, diag), flush=True)
            if publisher.returncode != 0:
                raise RuntimeError(f"video_publisher exited with {publisher.returncode}:\n{_tail(pub_log)}")
            # The node always processes the newest frame it got, so the result of the last image arrives; if the
            # node missed that image (transport loss), it is done once two diagnostics show it idle with every
            # received frame accounted for.
            mark = len(counts)

            def finished() -> bool:
                if image_stamps and results and results[-1]["stamp"] >= image_stamps[-1] - 1e-6:
                    return True
                if len(counts) < mark + 2 or counts[-1] != counts[-2]:
                    return False
                received, processed, dropped, bad = counts[-1]
                return received == processed + dropped + bad

            spin_until(finished, "the result of the last frame", 30)
            print(_summary_line(results, image_stamps, diag), flush=True)
            annotated.flush(results, result_stamps, final=True)
            annotated.close()
            summary = write_outputs(out, video, image_stamps, results, diag, events)
            summary["annotated_frames"] = annotated.written
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            print(f"demo: {summary['images']} images, {summary['messages']} results, faces "
                  f"{summary['faces']}, {summary['events']} expression event(s); wrote {out}/annotated.mp4, timeline.png, "
                  f"messages.jsonl, events.jsonl, summary.json "
                  f"in {time.monotonic() - t_start:.0f} s", flush=True)
            code = 0
        except (RuntimeError, KeyboardInterrupt) as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
        finally:
            if publisher is not None:
                _stop(publisher, "video_publisher")
            node_rc = _stop(node, "dfer_node")
            listener.destroy_node()
        if code == 0 and node_rc != 0:
            print(f"demo: dfer_node exited with code {node_rc} on SIGINT:\n{_tail(node_log)}", file=sys.stderr)
            code = 1
    return code


def _summary_line(results: list[dict], image_stamps: list[float], diag: dict) -> str:
    faces = results[-1]["faces"] if results else []
    parts = [f"{f['face_id']} {f['expression'] or '...':9s} {f['confidence']:.2f} V{f['valence']:+.2f} "
             f"A{f['arousal']:+.2f}" for f in faces] or ["no face"]
    t = results[-1]["stamp"] - image_stamps[0] if results and image_stamps else 0.0
    return (f"t={t:5.1f}s  {' | '.join(parts)}  [images {len(image_stamps)}, results {len(results)}, node "
            f"{diag.get('processed_rate_hz', '?')} Hz, stale drops {diag.get('dropped_stale', '?')}, "
            f"latency p50 {diag.get('latency_ms_p50', '?')} ms]")


def _video_fps(video: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    return float(fps)


class AnnotatedVideo:
    """Writes every camera frame the demo received, annotated with the newest result at or before its stamp.

    Results lag their images by the node's latency, so frames wait in a short queue until a result at
    least as new as them has arrived. Frames are matched to results by stamp only: a frame lost in
    transport is missing from the video, never misaligned.
    """

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.queue: deque = deque()
        self.writer = None
        self.written = 0

    def add(self, stamp: float, frame) -> None:
        self.queue.append((stamp, frame))

    def flush(self, results: list[dict], result_stamps: list[float], final: bool = False) -> None:
        import cv2

        from dfer_ros.ros.conversions import draw_faces

        while self.queue and (final or (result_stamps and result_stamps[-1] >= self.queue[0][0] - 1e-9)):
            stamp, frame = self.queue.popleft()
            if self.writer is None:
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                              (frame.shape[1], frame.shape[0]))
            k = bisect.bisect_right(result_stamps, stamp + 1e-9) - 1
            image = draw_faces(frame, results[k]["faces"] if k >= 0 else [])
            cv2.putText(image, f"frame {self.written}", (6, image.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)
            self.writer.write(image)
            self.written += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def write_outputs(out: Path, video: Path, image_stamps: list[float], results: list[dict], diag: dict,
                  events: Optional[list[dict]] = None) -> dict:
    """Write the JSON lines, the timeline plot and a summary; returns the summary."""
    events = events or []
    with open(out / "messages.jsonl", "w") as handle:
        for r in results:
            handle.write(json.dumps(r) + "\n")
    with open(out / "events.jsonl", "w") as handle:
        for e in events:
            handle.write(json.dumps(e) + "\n")
    t0 = image_stamps[0] if image_stamps else (results[0]["stamp"] if results else 0.0)
    plot_timeline(results, t0, out / "timeline.png", title=f"dfer_ros demo: {video.name}", events=events)
    per_face: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        for f in r["faces"]:
            per_face[f["face_id"]][f["expression"] or "(warming up)"] += 1
    summary = {"video": str(video), "images": len(image_stamps), "messages": len(results),
               "messages_with_faces": sum(1 for r in results if r["faces"]),
               "faces": sorted(per_face), "labels_per_face": {k: dict(v) for k, v in per_face.items()},
               "events": sum(e["kind"] == "onset" for e in events),
               "abstained_face_messages": sum(bool(f.get("abstained")) for r in results for f in r["faces"]),
               "node_diagnostics": diag}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def plot_timeline(results: list[dict], t0: float, path: Path, title: str = "",
                  events: Optional[list[dict]] = None) -> None:
    """Expression (label track + probabilities), expression events, valence and arousal per face over time.

    Expression episodes (``events``, as from ``event_to_dict``) are shaded from onset to offset on the
    probability panel, labelled, with the apex marked; an episode still open at the end runs to the last
    result. Images where the node abstained (face quality) are hatched grey on the label track."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dfer_ros.ros.conversions import face_color

    labels: list[str] = []
    for r in results:
        for f in r["faces"]:
            for name in f["probabilities"]:
                if name not in labels:
                    labels.append(name)
    series: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        for f in r["faces"]:
            s = series[f["face_id"]]
            s["t"].append(r["stamp"] - t0)
            s["label"].append(labels.index(f["expression"]) if f["expression"] in labels else float("nan"))
            s["abstained"].append(bool(f.get("abstained")))
            s["valence"].append(f["valence"] if f["va_confidence"] > 0 else float("nan"))
            s["arousal"].append(f["arousal"] if f["va_confidence"] > 0 else float("nan"))
            for name in labels:
                s["p_" + name].append(f["probabilities"].get(name, float("nan")))
    fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True,
                             gridspec_kw={"height_ratios": [1.3, 1.5, 1, 1]})
    ax_label, ax_prob, ax_v, ax_a = axes
    cmap = plt.get_cmap("tab10")
    for face_id, s in sorted(series.items()):
        color = tuple(c / 255.0 for c in face_color(face_id)[::-1])
        ax_label.plot(s["t"], s["label"], drawstyle="steps-post", color=color, lw=2.5, label=face_id)
        ax_v.plot(s["t"], s["valence"], color=color, lw=1.5, label=face_id)
        ax_a.plot(s["t"], s["arousal"], color=color, lw=1.5, label=face_id)
    if series:  # probabilities of the longest-seen face
        face_id, s = max(series.items(), key=lambda kv: len(kv[1]["t"]))
        for i, name in enumerate(labels):
            ax_prob.plot(s["t"], s["p_" + name], color=cmap(i % 10), lw=1.2, label=name)
        ax_prob.set_title(f"expression probabilities of {face_id} (smoothed)", fontsize=9, loc="left")
        ax_prob.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    _draw_events(ax_prob, events or [], t0, labels, cmap, results[-1]["stamp"] - t0 if results else 0.0)
    for face_id, s in sorted(series.items()):
        for start, end in _runs(s["t"], s["abstained"]):
            ax_label.axvspan(start, end, color="0.85", hatch="//", lw=0, zorder=0)
    ax_label.set_yticks(range(len(labels)), labels)
    ax_label.set_ylim(-0.5, max(len(labels) - 0.5, 0.5))
    ax_label.set_title("published expression (after hysteresis; grey hatch: withheld for face quality)", fontsize=9,
                       loc="left")
    ax_label.legend(loc="upper right", fontsize=8, title="face", title_fontsize=8)
    ax_prob.set_ylim(0, 1)
    ax_prob.set_ylabel("probability")
    for ax, name in ((ax_v, "valence"), (ax_a, "arousal")):
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_ylabel(name)
    for ax in axes:
        ax.grid(alpha=0.3)
    ax_a.set_xlabel("time since the first frame (s, image stamps)")
    fig.suptitle(title or "dfer_ros timeline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _runs(times: list, flags: list) -> list[tuple[float, float]]:
    """(start, end) time spans where ``flags`` is true (end = the next sample's time)."""
    spans, start = [], None
    for i, (t, flag) in enumerate(zip(times, flags)):
        if flag and start is None:
            start = t
        if start is not None and (not flag or i == len(times) - 1):
            spans.append((start, t if not flag else t + 0.04))
            start = None
    return spans


def _draw_events(ax, events: list[dict], t0: float, labels: list[str], cmap, t_end: float) -> None:
    """Shade each expression episode (onset -> offset) in its label's colour, with its name and apex."""
    episodes: dict[tuple[str, int], dict] = {}
    for e in events:
        key = (e["face_id"], e["episode"])
        episodes[key] = {**episodes.get(key, {}), **e} if e["kind"] == "offset" else {**e, **episodes.get(key, {})}
    for (face_id, _), e in sorted(episodes.items(), key=lambda kv: kv[1]["onset"]):
        color = cmap(labels.index(e["expression"]) % 10) if e["expression"] in labels else "0.5"
        start = e["onset"] - t0
        end = (e["offset"] - t0) if e.get("offset") is not None else t_end
        ax.axvspan(start, end, color=color, alpha=0.18, lw=0)
        ax.axvline(start, color=color, lw=1.0, ls="--")
        ax.plot([e["apex"] - t0], [e["peak_probability"]], marker="v", color=color, ms=7)
        ax.text(start, 0.97, f" {face_id} {e['expression']}", color=color, fontsize=8, va="top")


if __name__ == "__main__":
    sys.exit(main())
