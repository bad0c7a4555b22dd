"""Perception benchmark: per-stage ms and end-to-end fps, label flicker, and memory over a long run.

    dfer bench throughput [--frames 300] [--memory-frames 10000] [--out bench.json]

Scenarios on the real webcam video cap12 (``assets.sample_video()``):
  * native 400x300 with 1 face, and the frame tiled 2x2 (800x600, 4 faces);
  * 640x480 (upscaled) with 1 face, and 2x2 tiles of a 320x240 copy (640x480, 4 faces).
Each runs the full pipeline (detection, tracking, alignment, model, aggregation) on ``--frames`` frames.
Label flips per 100 frames compare the published label (aggregation on) with each frame's own top
label (what aggregation off publishes), per track, on the native 1-face run.
Memory: RSS over ``--memory-frames`` synthetic frames where astronaut faces come and go (tracks
start and end), sampled every 1000 frames; flat RSS and bounded buffers mean nothing accumulates.
Targets: >= 30 fps with 1 face and >= 15 fps with 4 faces at 640x480.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.pipeline import STAGES, PerceptionPipeline

log = logging.getLogger(__name__)


@dataclass
class ScenarioResult:
    name: str
    size: str
    faces_expected: int
    frames: int
    mean_faces: float
    stage_ms: dict[str, float]
    total_ms: float
    fps: float
    flips_per_100_on: Optional[float] = None
    flips_per_100_off: Optional[float] = None


@dataclass
class MemoryResult:
    frames: int
    rss_mb: list[tuple[int, float]] = field(default_factory=list)  # (frame, RSS MiB)
    ids_issued: int = 0
    max_live_tracks: int = 0
    max_buffers: int = 0
    final_buffers: int = 0
    fps: float = 0.0


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc), 0 when unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def load_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot decode {path}")
    return frames


def tile2x2(frame: np.ndarray) -> np.ndarray:
    return np.vstack([np.hstack([frame, frame]), np.hstack([frame, frame])])


def count_flips(sequences: dict[str, list[str]]) -> tuple[int, int]:
    """(label changes, frames) summed over tracks; empty labels (no estimate yet) are ignored."""
    flips = frames = 0
    for labels in sequences.values():
        labels = [x for x in labels if x]
        frames += len(labels)
        flips += sum(a != b for a, b in zip(labels, labels[1:]))
    return flips, frames


GRIDS = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4)}  # faces -> (rows, columns)


def grid_frames(frames: Sequence[np.ndarray], faces: int, width: int, height: int) -> list[np.ndarray]:
    """Each frame with ``faces`` copies of the video laid out in a grid filling ``width`` x ``height``.

    Cells keep the video's aspect ratio (letterboxed), so faces stay faces; 8 faces at 640x480 are small
    (about 60 px) and the detector may miss some: the table reports the faces actually found.
    """
    import cv2

    rows, cols = GRIDS[faces]
    cell_w, cell_h = width // cols, height // rows
    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        scale = min(cell_w / w, cell_h / h)
        small = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA
                           if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((height, width, 3), np.uint8)
        for r in range(rows):
            for c in range(cols):
                y = r * cell_h + (cell_h - small.shape[0]) // 2
                x = c * cell_w + (cell_w - small.shape[1]) // 2
                canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        out.append(canvas)
    return out


def run_scenario(name: str, frames: Sequence[np.ndarray], model, config: PipelineConfig, faces_expected: int,
                 fps: float = 25.0, flips: bool = False) -> ScenarioResult:
    from tqdm import tqdm

    pipe = PerceptionPipeline(config, model)
    stage = defaultdict(float)
    face_count = 0
    published: dict[str, list[str]] = defaultdict(list)
    per_frame: dict[str, list[str]] = defaultdict(list)
    pipe.process(frames[0], -1.0)  # warm-up (lazy inits) outside the timing
    pipe.reset()
    start = time.perf_counter()
    for i, frame in enumerate(tqdm(frames, desc=name, unit="frame", leave=False)):
        result = pipe.process(frame, i / fps)
        for key, ms in result.timings_ms.items():
            stage[key] += ms
        face_count += len(result.faces)
        for face in result.faces:
            if face.frame_estimate is not None:
                published[face.face_id].append(face.expression)
                per_frame[face.face_id].append(face.frame_estimate.top_expression)
    wall = time.perf_counter() - start
    n = len(frames)
    h, w = frames[0].shape[:2]
    out = ScenarioResult(name=name, size=f"{w}x{h}", faces_expected=faces_expected, frames=n,
                         mean_faces=face_count / n, stage_ms={k: stage[k] / n for k in STAGES},
                         total_ms=stage["total"] / n, fps=n / wall)
    if flips:
        f_on, n_on = count_flips(published)
        f_off, n_off = count_flips(per_frame)
        out.flips_per_100_on = 100.0 * f_on / max(n_on, 1)
        out.flips_per_100_off = 100.0 * f_off / max(n_off, 1)
    return out


def synthetic_faces_frames(count: int, fps: float = 25.0, size=(320, 240), seed: int = 0):
    """Frames with up to 3 astronaut faces that move, leave for longer than lost_seconds and come back."""
    import skimage.data

    from dfer_ros.perception.detection import YuNetDetector

    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    x, y, w, h = YuNetDetector(max_side=512).detect(astro)[0].box.astype(int)
    pad = int(0.35 * h)
    tile = cv2.resize(astro[max(0, y - pad): y + h + pad, max(0, x - pad): x + w + pad], (72, 72))
    rng = np.random.default_rng(seed)
    width, height = size
    slots = []  # per slot: list of (start, end, x0, y0, vx, vy) appearances
    for s in range(3):
        t, apps = rng.uniform(0, 2), []
        while t < count / fps:
            dur = rng.uniform(2, 6)
            apps.append((t, t + dur, rng.uniform(0, width - 72), rng.uniform(0, height - 72),
                         rng.uniform(-15, 15), rng.uniform(-8, 8)))
            t += dur + rng.uniform(1.6, 3.0)  # away longer than lost_seconds (1 s): the next is a new track
        slots.append(apps)
    background = np.full((height, width, 3), 90, np.uint8)
    for i in range(count):
        t = i / fps
        frame = background.copy()
        for s, apps in enumerate(slots):
            for start, end, x0, y0, vx, vy in apps:
                if start <= t < end:
                    px = int(np.clip(x0 + vx * (t - start), 0, width - 72))
                    py = int(np.clip(y0 + vy * (t - start), 0, height - 72))
                    frame[py:py + 72, px:px + 72] = tile
        yield t, frame


def run_memory(model, config: PipelineConfig, count: int) -> MemoryResult:
    from tqdm import tqdm

    pipe = PerceptionPipeline(config, model)
    res = MemoryResult(frames=count)
    ids = set()
    start = time.perf_counter()
    for i, (t, frame) in enumerate(tqdm(synthetic_faces_frames(count), total=count, desc="memory", unit="frame",
                                        leave=False)):
        result = pipe.process(frame, t)
        ids |= {f.face_id for f in result.faces}
        res.max_live_tracks = max(res.max_live_tracks, len(pipe.tracker.tracks))
        res.max_buffers = max(res.max_buffers, len(pipe.buffers))
        if i % 1000 == 0 or i == count - 1:
            res.rss_mb.append((i, round(rss_mb(), 1)))
    res.fps = count / (time.perf_counter() - start)
    res.ids_issued = len(ids)
    res.final_buffers = len(pipe.buffers)
    return res


def format_table(results: list[ScenarioResult]) -> str:
    head = f"{'scenario':<22}{'size':>9}{'faces':>7}" + "".join(f"{s:>10}" for s in STAGES) + f"{'total':>9}{'fps':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:<22}{r.size:>9}{r.mean_faces:>7.2f}" + "".join(f"{r.stage_ms[s]:>10.2f}" for s in STAGES)
                     + f"{r.total_ms:>9.1f}{r.fps:>7.1f}")
    return "\n".join(lines)
