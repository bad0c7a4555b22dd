"""Conversions between ROS messages and the ROS-free perception types.

Images: ``sensor_msgs/Image`` <-> numpy without cv_bridge (not available as a wheel). Decoding honours
``step`` (row padding) and ``is_bigendian`` and checks everything BEFORE touching the pixel buffer, so a
malformed message (wrong encoding, step too small, truncated data, 0x0, absurdly large) becomes an
``ImageError`` whose message says why; the node logs it and counts it instead of crashing.
Encoding uses ``frame.tobytes()``: assigning a numpy array to ``msg.data`` is ~1000x slower in rclpy.

Results: one ``FrameResult`` -> the five per-image output messages, every one stamped with the SOURCE
image's header, so a subscriber can match an estimate to the exact camera frame (and to sim time).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np

from dfer_ros.perception.types import AffectEstimate, FaceResult, FrameResult

# encoding -> channels; what the node accepts (8-bit only). The name gives the channel order.
SUPPORTED_ENCODINGS: dict[str, int] = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4, "8UC1": 1, "8UC3": 3}
# Encodings we recognise but refuse, with the reason given to the user.
REJECTED_ENCODINGS: dict[str, str] = {
    "mono16": "16-bit mono images are not supported (convert to mono8 upstream, e.g. depth or IR cameras)",
    "16UC1": "16-bit mono images are not supported (convert to mono8 upstream, e.g. depth or IR cameras)",
}
DEFAULT_MAX_IMAGE_PIXELS = 3840 * 2160


class ImageError(ValueError):
    """An image message cannot be used; the message says why (logged by the node, frame counted as bad).

    ``kind`` is a short category (encoding, empty, too_large, step, truncated, decode) used to count bad
    images per reason in the diagnostics and to throttle repeated warnings of one kind.
    """

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind


def image_to_array(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/Image`` into an (H, W[, C]) uint8 array and its encoding (no copy when unpadded).

    Raises ImageError for: unsupported encoding, 0 width/height, more than ``max_pixels`` pixels (checked
    before anything else touches the data), ``step`` smaller than ``width * channels``, data shorter than
    ``step * height``.
    """
    encoding = str(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    if encoding in REJECTED_ENCODINGS:
        raise ImageError(f"encoding {encoding!r} rejected: {REJECTED_ENCODINGS[encoding]}", "encoding")
    if encoding not in SUPPORTED_ENCODINGS:
        raise ImageError(f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}", "encoding")
    if width <= 0 or height <= 0:
        raise ImageError(f"empty image ({width}x{height})", "empty")
    if width * height > max_pixels:
        raise ImageError(f"image {width}x{height} has {width * height} pixels, more than max_image_pixels="
                         f"{max_pixels}; rejected before decoding", "too_large")
    channels = SUPPORTED_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageError(f"step {step} is smaller than width*channels = {width}*{channels} = {row_bytes}", "step")
    needed = step * height
    data = msg.data
    size = len(data)
    if size < needed:
        raise ImageError(f"truncated data: {size} bytes, need step*height = {step}*{height} = {needed}", "truncated")
    # 8-bit encodings: is_bigendian does not change byte order of single-byte channels.
    buf = np.frombuffer(data, np.uint8, count=needed) if not isinstance(data, np.ndarray) else data[:needed]
    rows = buf.reshape(height, step)
    if step != row_bytes:
        rows = rows[:, :row_bytes]
    frame = rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)
    if encoding == "8UC3":
        encoding = "bgr8"
    elif encoding == "8UC1":
        encoding = "mono8"
    return frame, encoding


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): all of C0-CF except DHT, JPG and DAC
_JPEG_SOF = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length field


def compressed_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from a PNG or JPEG header, without decoding any pixel.

    PNG: the IHDR chunk that must follow the signature. JPEG: the first SOFn segment (segments before it are
    skipped by their length). Raises ImageError (kind ``decode``) for anything else or a header cut short.
    """
    if data[:8] == PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("cannot decode compressed image: PNG without an IHDR chunk after the signature", "decode")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data):
            if data[pos] != 0xFF:
                raise ImageError(f"cannot decode compressed image: JPEG header broken at byte {pos} (no marker)", "decode")
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in _JPEG_NO_LENGTH:
                pos += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                break
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            if marker in _JPEG_SOF:
                if pos + 9 > len(data):
                    break
                return "jpeg", int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
            if length < 2:
                raise ImageError(f"cannot decode compressed image: JPEG segment 0x{marker:02X} with length {length}", "decode")
            pos += 2 + length
        raise ImageError("cannot decode compressed image: JPEG without a frame header (SOFn) before the image data", "decode")
    raise ImageError(f"cannot decode compressed image: neither PNG nor JPEG (starts with {bytes(data[:8]).hex()})", "decode")


def compressed_to_array(msg, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg/png) into a bgr8 array; ImageError when it cannot.

    Width and height come from the header first and are checked against ``max_pixels`` BEFORE decoding:
    a few hundred KB of PNG can declare 16000x16000 pixels (a decompression bomb, 768 MB decoded).
    """
    raw = bytes(msg.data)
    if not raw:
        raise ImageError("compressed image has no data", "empty")
    kind, width, height = compressed_size(raw)
    if width <= 0 or height <= 0:
        raise ImageError(f"empty {kind} image ({width}x{height} in its header)", "empty")
    if width * height > max_pixels:
        raise ImageError(f"{kind} image {width}x{height} (from its header) has {width * height} pixels, more than "
                         f"max_image_pixels={max_pixels}; rejected before decoding", "too_large")
    frame = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ImageError(f"cannot decode compressed image (format {msg.format!r}, {len(raw)} bytes)", "decode")
    if frame.shape[0] * frame.shape[1] > max_pixels:  # a header that lied
        raise ImageError(f"image {frame.shape[1]}x{frame.shape[0]} has more than max_image_pixels={max_pixels}", "too_large")
    return frame, "bgr8"


def array_to_image(frame: np.ndarray, encoding: str = "bgr8", header=None):
    """numpy (H, W[, C]) uint8 -> ``sensor_msgs/Image`` (``data`` from ``tobytes()``, the fast path)."""
    from sensor_msgs.msg import Image

    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8:
        raise ImageError(f"array_to_image needs uint8, got {frame.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    channels = 1 if frame.ndim == 2 else int(frame.shape[2])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    msg.data = frame.tobytes()
    return msg


def stamp_to_seconds(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def _finite(value: float, default: float = 0.0) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else default


def _roi(box: np.ndarray):
    from sensor_msgs.msg import RegionOfInterest

    x, y, w, h = [float(v) for v in box]
    roi = RegionOfInterest()
    roi.x_offset, roi.y_offset = max(0, int(round(x))), max(0, int(round(y)))
    roi.width, roi.height = max(0, int(round(w))), max(0, int(round(h)))
    return roi


def age_field(age: float) -> float:
    """``estimate_age`` of the messages: seconds, or -1 when the model never updated the estimate."""
    return float(age) if age is not None and math.isfinite(float(age)) else -1.0


def _expression(header, face_id: str, labels, probs, label: str, confidence: float, age: float = math.inf):
    from dfer_ros.msg import FaceExpression

    msg = FaceExpression()
    msg.header = header
    msg.face_id = face_id
    msg.labels = [str(x).lower() for x in labels]  # the message documents lowercase labels
    msg.probabilities = [float(p) for p in np.asarray(probs, np.float32)]
    msg.expression = str(label).lower()
    msg.confidence = _finite(confidence)
    msg.estimate_age = age_field(age)
    return msg


def _valence_arousal(header, face_id: str, est: AffectEstimate, age: float = math.inf):
    from dfer_ros.msg import FaceValenceArousal

    msg = FaceValenceArousal()
    msg.header = header
    msg.face_id = face_id
    if est.has_va:
        msg.valence = float(np.clip(est.valence, -1.0, 1.0))
        msg.arousal = float(np.clip(est.arousal, -1.0, 1.0))
        msg.confidence = float(np.clip(_finite(est.va_confidence), 0.0, 1.0))
    else:  # model without VA: zeros with confidence 0 (documented "no information")
        msg.valence = msg.arousal = msg.confidence = 0.0
    msg.estimate_age = age_field(age) if est.has_va else -1.0
    return msg


def _action_units(header, face_id: str, est: AffectEstimate, threshold: float, age: float = math.inf):
    from dfer_ros.msg import FaceActionUnits

    msg = FaceActionUnits()
    msg.header = header
    msg.face_id = face_id
    probs = np.nan_to_num(np.asarray(est.au_probs, np.float32), nan=0.0)
    msg.names = [str(n) for n in est.au_names]
    msg.probabilities = [float(p) for p in probs]
    msg.active = [bool(p >= threshold) for p in probs]
    msg.threshold = float(threshold)
    msg.estimate_age = age_field(age) if est.au_names else -1.0
    return msg


def face_to_affect(header, face: FaceResult, au_threshold: float = 0.5):
    """One ``FaceResult`` -> ``dfer_ros/FaceAffect`` (header = the source image's header)."""
    from dfer_ros.msg import FaceAffect

    est = face.estimate
    msg = FaceAffect()
    msg.header = header
    msg.face_id = face.face_id
    msg.person_id = str(face.person_id)
    msg.roi = _roi(face.box)
    msg.detection_score = float(np.clip(_finite(face.detection_score), 0.0, 1.0))
    msg.landmarks = [] if face.landmarks is None else [float(v) for v in np.asarray(face.landmarks).reshape(-1)]
    msg.detected = bool(face.detected)
    msg.window_frames = int(face.window_frames)
    msg.window_seconds = float(face.window_seconds)
    msg.warmed_up = bool(face.warmed_up)
    msg.expression = _expression(header, face.face_id, est.expression_labels, est.expression_probs,
                                 face.expression, face.expression_confidence, face.estimate_age)
    msg.valence_arousal = _valence_arousal(header, face.face_id, est, face.estimate_age)
    msg.action_units = _action_units(header, face.face_id, est, au_threshold, face.action_units_age)
    if est.compound_labels:
        probs = np.asarray(est.compound_probs, np.float32)
        top = est.compound_labels[int(np.argmax(probs))] if probs.size else ""
        msg.compound_expression = _expression(header, face.face_id, est.compound_labels, probs, top,
                                              float(probs.max()) if probs.size else 0.0, face.estimate_age)
    else:
        msg.compound_expression = _expression(header, face.face_id, (), np.zeros(0, np.float32), "", 0.0)
    rel = face.relative_expression_probs
    if rel is not None and rel.size:
        msg.relative_expression = _expression(header, face.face_id, est.expression_labels, rel,
                                              face.relative_expression, float(rel.max()), face.estimate_age)
    else:
        msg.relative_expression = _expression(header, face.face_id, (), np.zeros(0, np.float32), "", 0.0)
    msg.quality = face_quality_msg(face.quality)
    msg.abstained = bool(face.abstain_reason)
    msg.abstain_reason = str(face.abstain_reason)
    return msg


def face_quality_msg(quality):
    """``quality.FaceQuality`` (or None: quality off) -> ``dfer_ros/FaceQuality`` (all zero/false for None)."""
    from dfer_ros.msg import FaceQuality

    msg = FaceQuality()
    if quality is None:
        return msg
    pose = quality.head_pose
    msg.head_pose_valid = pose is not None
    if pose is not None:
        msg.yaw, msg.pitch, msg.roll = float(pose.yaw), float(pose.pitch), float(pose.roll)
    msg.sharpness = _finite(quality.sharpness)
    msg.face_size = _finite(quality.face_size)
    msg.detection_score = float(np.clip(_finite(quality.detection_score), 0.0, 1.0))
    msg.visible_fraction = float(np.clip(_finite(quality.visible_fraction), 0.0, 1.0))
    msg.cut_by_border = bool(quality.cut_by_border)
    msg.looking_at_camera = bool(quality.looking_at_camera)
    msg.attention = float(np.clip(_finite(quality.attention), 0.0, 1.0))
    return msg


class StampBook:
    """The exact source ``Time`` of the last ``capacity`` processed images, keyed by their float seconds.

    The pipeline works in float seconds, which cannot hold an epoch-sized stamp to the nanosecond (float64
    resolves about 0.5 us there); events name stamps of earlier images (onset, apex), so the node looks the
    exact header stamp up here. Bounded: older stamps (episodes longer than ``capacity`` images) fall back to
    ``seconds_to_time``, within a microsecond."""

    def __init__(self, capacity: int = 4096):
        from collections import OrderedDict

        self.capacity = int(capacity)
        self._times: "OrderedDict[float, object]" = OrderedDict()

    def remember(self, seconds: float, stamp) -> None:
        self._times[float(seconds)] = (int(stamp.sec), int(stamp.nanosec))  # a copy: messages are mutable
        self._times.move_to_end(float(seconds))
        while len(self._times) > self.capacity:
            self._times.popitem(last=False)

    def time_of(self, seconds: float):
        from builtin_interfaces.msg import Time

        exact = self._times.get(float(seconds))
        return Time(sec=exact[0], nanosec=exact[1]) if exact is not None else seconds_to_time(seconds)

    def __len__(self) -> int:
        return len(self._times)


def seconds_to_time(seconds: float):
    """float seconds -> builtin_interfaces/Time (exact to the nanosecond for stamps that came from a Time)."""
    from builtin_interfaces.msg import Time

    total = int(round(float(seconds) * 1e9))
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


def events_to_message(events, header, stamp_of=None):
    """Expression events of one processed image -> ``dfer_ros/ExpressionEventArray`` (None when there are none).

    ``header`` is the processed image's header. Each event's own header carries the stamp of the image that
    produced it (``stamp_of(seconds)`` maps a pipeline stamp back to the exact source ``Time``; by default it
    is rebuilt from the float seconds)."""
    from dfer_ros.msg import ExpressionEvent, ExpressionEventArray
    from std_msgs.msg import Header

    from dfer_ros.perception.events import ONSET

    if not events:
        return None
    to_time = stamp_of or seconds_to_time
    out = ExpressionEventArray(header=header)
    for e in events:
        msg = ExpressionEvent()
        msg.header = Header(stamp=to_time(e.stamp), frame_id=header.frame_id)
        msg.face_id, msg.person_id = e.face_id, e.person_id
        msg.kind = ExpressionEvent.ONSET if e.kind == ONSET else ExpressionEvent.OFFSET
        msg.episode = int(e.episode)
        msg.expression = str(e.label).lower()
        msg.onset, msg.apex = to_time(e.onset_stamp), to_time(e.apex_stamp)
        if e.offset_stamp is not None:
            msg.offset = to_time(e.offset_stamp)
        msg.duration = float(max(0.0, e.duration))
        msg.peak_probability = float(np.clip(e.peak_probability, 0.0, 1.0))
        msg.mean_intensity = float(np.clip(e.mean_intensity, 0.0, 1.0))
        msg.end_reason = str(e.end_reason)
        out.events.append(msg)
    return out


def event_to_dict(msg) -> dict:
    """A ``dfer_ros/ExpressionEvent`` as plain JSON-able data (demo log, tests)."""
    return {"kind": "onset" if msg.kind == msg.ONSET else "offset", "face_id": msg.face_id,
            "person_id": msg.person_id, "episode": int(msg.episode), "expression": msg.expression,
            "stamp": stamp_to_seconds(msg.header.stamp), "onset": stamp_to_seconds(msg.onset),
            "apex": stamp_to_seconds(msg.apex),
            "offset": stamp_to_seconds(msg.offset) if msg.kind == msg.OFFSET else None,
            "duration": round(float(msg.duration), 4), "peak_probability": round(float(msg.peak_probability), 4),
            "mean_intensity": round(float(msg.mean_intensity), 4), "end_reason": msg.end_reason}


RESULT_TOPICS = ("faces/affect", "faces/expression", "faces/valence_arousal", "faces/action_units", "faces/tracked")


def result_to_messages(result: FrameResult, header, au_threshold: float = 0.5,
                       topics: Optional[Sequence[str]] = None) -> dict:
    """The per-image messages for one processed image, keyed by topic name (relative, no slash): all of
    ``RESULT_TOPICS``, or only ``topics`` (the node builds only what somebody subscribes to).

    Every message and every per-face entry carries ``header`` (the source image's stamp and frame_id);
    arrays are empty when no face is tracked, so subscribers get one message per processed image.
    """
    from dfer_ros.msg import (FaceActionUnitsArray, FaceAffectArray, FaceExpressionArray,
                              FaceValenceArousalArray, TrackedFaces)

    chosen = set(RESULT_TOPICS if topics is None else topics)
    wanted = [t for t in RESULT_TOPICS if t in chosen]
    if not wanted:
        return {}
    faces = [face_to_affect(header, face, au_threshold) for face in result.faces]
    out: dict = {}
    for topic in wanted:
        if topic == "faces/affect":
            out[topic] = FaceAffectArray(header=header, faces=faces)
        elif topic == "faces/expression":
            out[topic] = FaceExpressionArray(header=header, faces=[f.expression for f in faces])
        elif topic == "faces/valence_arousal":
            out[topic] = FaceValenceArousalArray(header=header, faces=[f.valence_arousal for f in faces])
        elif topic == "faces/action_units":
            out[topic] = FaceActionUnitsArray(header=header, faces=[f.action_units for f in faces])
        else:
            out[topic] = TrackedFaces(header=header, face_ids=[f.face_id for f in faces], rois=[f.roi for f in faces],
                                      person_ids=[f.person_id for f in faces],
                                      people_in_view=list(result.people_in_view))
    return out


def affect_array_to_dict(msg) -> dict:
    """A ``FaceAffectArray`` as plain JSON-able data (used by the demo's JSON-lines log and tests)."""
    return {
        "stamp": stamp_to_seconds(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "faces": [{
            "face_id": f.face_id,
            "roi": [f.roi.x_offset, f.roi.y_offset, f.roi.width, f.roi.height],
            "detected": bool(f.detected),
            "detection_score": round(float(f.detection_score), 4),
            "warmed_up": bool(f.warmed_up),
            "window_frames": int(f.window_frames),
            "estimate_age": round(float(f.expression.estimate_age), 4),
            "action_units_age": round(float(f.action_units.estimate_age), 4),
            "expression": f.expression.expression,
            "confidence": round(float(f.expression.confidence), 4),
            "probabilities": dict(zip(f.expression.labels, [round(float(p), 4) for p in f.expression.probabilities])),
            "valence": round(float(f.valence_arousal.valence), 4),
            "arousal": round(float(f.valence_arousal.arousal), 4),
            "va_confidence": round(float(f.valence_arousal.confidence), 4),
            "action_units": {n: round(float(p), 4) for n, p in zip(f.action_units.names, f.action_units.probabilities)},
            "abstained": bool(f.abstained),
            "abstain_reason": f.abstain_reason,
            "quality": {"yaw": round(float(f.quality.yaw), 2), "pitch": round(float(f.quality.pitch), 2),
                        "roll": round(float(f.quality.roll), 2), "head_pose_valid": bool(f.quality.head_pose_valid),
                        "sharpness": round(float(f.quality.sharpness), 1), "face_size": round(float(f.quality.face_size), 1),
                        "visible_fraction": round(float(f.quality.visible_fraction), 3),
                        "cut_by_border": bool(f.quality.cut_by_border),
                        "looking_at_camera": bool(f.quality.looking_at_camera),
                        "attention": round(float(f.quality.attention), 3)},
        } for f in msg.faces],
    }


_COLORS = [(0, 200, 0), (0, 160, 255), (255, 120, 0), (200, 0, 200), (0, 220, 220), (255, 0, 80)]


def face_color(face_id: str) -> tuple[int, int, int]:
    """A stable BGR colour per face id."""
    digits = "".join(ch for ch in face_id if ch.isdigit())
    return _COLORS[(int(digits) if digits else sum(map(ord, face_id))) % len(_COLORS)]


def draw_faces(frame_bgr: np.ndarray, faces: list[dict]) -> np.ndarray:
    """Draw boxes, ids, labels and VA onto a copy of ``frame_bgr``; ``faces`` as from ``affect_array_to_dict``
    (or ``FaceResult``-derived dicts with the same keys). Used by the node's debug image and the demo video."""
    out = frame_bgr.copy()
    scale = max(1.0, min(out.shape[:2]) / 480.0)  # text and lines grow with the image
    font = 0.45 * scale
    line = int(round(16 * scale))
    for f in faces:
        x, y, w, h = [int(v) for v in f["roi"]]
        color = face_color(f["face_id"])
        cv2.rectangle(out, (x, y), (x + w, y + h), color, max(2, int(2 * scale)))
        texts = (f"{f['face_id']} {f['expression'] or '...'} {f['confidence']:.2f}",
                 f"V {f['valence']:+.2f}  A {f['arousal']:+.2f}")
        top = y - 6 - line if y - 6 - line >= line else y + h + line  # above the box, else below it
        for i, text in enumerate(texts):
            org = (max(2, x), top + i * line)
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), max(3, int(3 * scale)), cv2.LINE_AA)
            cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, color, max(1, int(scale)), cv2.LINE_AA)
    return out


def result_face_dicts(result: FrameResult) -> list[dict]:
    """Minimal per-face dicts of a ``FrameResult`` for ``draw_faces`` (no message round trip)."""
    out = []
    for f in result.faces:
        est = f.estimate
        out.append({"face_id": f.face_id, "roi": [float(v) for v in f.box], "expression": f.expression,
                    "confidence": _finite(f.expression_confidence),
                    "valence": _finite(est.valence), "arousal": _finite(est.arousal)})
    return out


def optional_header_copy(header) -> Optional[object]:
    """A copy of a std_msgs/Header (messages are mutable; the node keeps the source header per frame)."""
    if header is None:
        return None
    from std_msgs.msg import Header

    return Header(stamp=header.stamp, frame_id=header.frame_id)
