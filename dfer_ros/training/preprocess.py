"""Turn raw videos into aligned face-crop frame folders with the node's own detector, tracker and aligner.

Training crops must look like the crops the node feeds the encoder at run time, so this runs the
pipeline's own face front-end (``perception.front_end.FaceFrontEnd``) with the same ``PipelineConfig``:
the detector (YuNet, or Haar), the ByteTrack-style tracker driven by frame stamps, the largest-first
cap, and the 5-point similarity alignment with the model's crop size and face scale.

Output per video (``<out>/<video stem>/``):
  00001.jpg, 00002.jpg, ...    crops of the video's main face (the track seen in most frames),
                               named by SOURCE frame number (1-based), so per-frame annotations line
                               up as in Aff-Wild2's cropped_aligned; frames without that face are absent
  tracks/<face id>/...         the other faces (``keep="all"``)
  .done.json                   marker: settings, frame count, tracks; a video with a marker whose
                               settings match is skipped, so an interrupted run resumes where it stopped
Work happens in ``<name>.partial/`` and is moved into place only when the video is complete.

Many videos run in parallel over processes (``workers``): videos are independent (each its own
tracker, the detector stateless), so each worker process builds one detector and takes whole videos;
the output is the same as one process's, only the order of completion differs. The command line is
``dfer preprocess`` (``dfer_ros/cli/preprocess.py``).
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.front_end import FaceFrontEnd, build_detector
from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.datasets.common import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

MARKER = ".done.json"


@dataclass
class PreprocessResult:
    video: Path
    folder: Path
    status: str  # "done", "skipped" (marker present) or "failed"
    frames: int = 0
    main_track: str = ""
    main_frames: int = 0
    tracks: int = 0
    reason: str = ""


def _settings(spec: CropSpec, cfg: PipelineConfig, keep: str, quality: int) -> dict:
    return {"crop_size": spec.size, "face_scale": spec.face_scale, "keep": keep, "jpeg_quality": quality,
            "detection": cfg.detection.__dict__, "tracking": cfg.tracking.__dict__}


def is_done(folder: Path, settings: dict) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("settings") == json.loads(json.dumps(settings))
    except (json.JSONDecodeError, OSError):
        return False


def _id_number(face_id: str) -> int:
    """The tracker's ids come from one process-wide counter, so they depend on what the process did
    before; the output names tracks per video in order of confirmation instead, which makes a
    video's output the same whichever worker, and after whichever other videos, it ran."""
    return int(face_id[1:]) if face_id[1:].isdigit() else 0


def preprocess_video(video: Path, out_dir: Path, spec: CropSpec, cfg: Optional[PipelineConfig] = None,
                     keep: str = "main", jpeg_quality: int = 95, detector=None) -> PreprocessResult:
    """Crop one video (see the module docstring); never raises for a bad video, reports it instead."""
    cfg = (cfg or PipelineConfig()).validate()
    video, out_dir = Path(video), Path(out_dir)
    folder = out_dir / video.stem
    settings = _settings(spec, cfg, keep, jpeg_quality)
    if is_done(folder, settings):
        return PreprocessResult(video, folder, "skipped")
    partial = out_dir / f"{video.stem}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        return PreprocessResult(video, folder, "failed", reason="cannot be opened")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and fps > 0 else 25.0
    front_end = FaceFrontEnd(cfg, detector)
    bgr_spec = CropSpec(size=spec.size, face_scale=spec.face_scale, color="bgr")  # written with cv2 (BGR)
    counts: dict[str, int] = {}
    names: dict[str, str] = {}  # tracker id -> this video's own "f1", "f2", ... (see _id_number)
    index = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            step = front_end.step(frame, index / fps)
            faces = [t for t in step.tracks if t.detected_now]  # only real detections become training crops
            crops = front_end.crops(frame, faces, bgr_spec)
            for fid in sorted((t.face_id for t in faces if t.face_id not in names), key=_id_number):
                names[fid] = f"f{len(names) + 1}"
            for t, crop in zip(faces, crops):
                name = names[t.face_id]
                target = partial / "tracks" / name
                target.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(target / f"{index + 1:05d}.jpg"), crop, params)
                counts[name] = counts.get(name, 0) + 1
            index += 1
    except Exception as exc:  # noqa: BLE001 - one broken video must not stop a dataset-wide run
        log.exception("%s: failed at frame %d", video, index)
        shutil.rmtree(partial, ignore_errors=True)
        return PreprocessResult(video, folder, "failed", frames=index, reason=f"{type(exc).__name__}: {exc}")
    finally:
        cap.release()
    if index == 0:
        shutil.rmtree(partial, ignore_errors=True)
        return PreprocessResult(video, folder, "failed", reason="no frame could be decoded")
    main = max(counts, key=lambda k: (counts[k], -_id_number(k))) if counts else ""
    partial.mkdir(parents=True, exist_ok=True)
    if main:
        for f in (partial / "tracks" / main).iterdir():
            f.rename(partial / f.name)
        shutil.rmtree(partial / "tracks" / main)
    if keep == "main":
        shutil.rmtree(partial / "tracks", ignore_errors=True)
    result = PreprocessResult(video, folder, "done", frames=index, main_track=main,
                              main_frames=counts.get(main, 0), tracks=len(counts))
    if not counts:
        result.reason = "no face found"
    (partial / MARKER).write_text(json.dumps({
        "video": str(video), "frames": index, "fps": fps, "main_track": main, "tracks": counts,
        "reason": result.reason, "settings": settings}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return result


def find_videos(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES))
        else:
            out.append(p)
    return out


_WORKER: dict = {}


def _init_worker(cfg: PipelineConfig) -> None:
    cv2.setNumThreads(1)  # the parallelism is the processes; threads on top would only oversubscribe
    _WORKER["detector"] = build_detector(cfg)


def _work(video: Path, out_dir: Path, spec: CropSpec, cfg: PipelineConfig, keep: str,
          jpeg_quality: int) -> PreprocessResult:
    return preprocess_video(video, out_dir, spec, cfg, keep, jpeg_quality, detector=_WORKER["detector"])


def preprocess_videos(videos: Sequence[Path], out_dir: Path, spec: CropSpec, cfg: Optional[PipelineConfig] = None,
                      keep: str = "main", progress: bool = True, workers: int = 1,
                      jpeg_quality: int = 95) -> list[PreprocessResult]:
    """Crop every video (results in input order); ``workers`` > 1 runs videos in that many processes.
    Videos already done with these settings are skipped without starting any work."""
    from tqdm import tqdm

    cfg = (cfg or PipelineConfig()).validate()
    videos = [Path(v) for v in videos]
    out_dir = Path(out_dir)
    stems: dict[str, Path] = {}
    for v in videos:
        if v.stem in stems and stems[v.stem] != v:
            raise ValueError(f"{stems[v.stem]} and {v} would both write {out_dir / v.stem}: rename one")
        stems[v.stem] = v
    settings = _settings(spec, cfg, keep, jpeg_quality)
    results: list[Optional[PreprocessResult]] = [None] * len(videos)
    todo = []
    for i, v in enumerate(videos):
        if is_done(out_dir / v.stem, settings):
            results[i] = PreprocessResult(v, out_dir / v.stem, "skipped")
        else:
            todo.append(i)
    bar = tqdm(total=len(videos), initial=len(videos) - len(todo), desc="videos", disable=not progress)
    if todo and workers <= 1:
        detector = build_detector(cfg)
        for i in todo:
            results[i] = preprocess_video(videos[i], out_dir, spec, cfg, keep, jpeg_quality, detector=detector)
            bar.update()
    elif todo:
        ctx = multiprocessing.get_context("spawn")  # no forked copies of OpenCV's or torch's threads
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(cfg,)) as pool:
            futures = {pool.submit(_work, videos[i], out_dir, spec, cfg, keep, jpeg_quality): i for i in todo}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    for r in results:
        if r.status == "failed":
            log.warning("%s: %s", r.video, r.reason)
    return results  # type: ignore[return-value]
