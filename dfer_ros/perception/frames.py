"""Normalise whatever a camera, a bag or a test hands us into one BGR uint8 (H, W, 3) image.

Every later stage assumes contiguous BGR uint8; doing the checks once here keeps them out of the
detector, aligner and encoders, and turns bad input into a ``FrameError`` whose message says what
was wrong (the pipeline reports it as the frame's ``skipped_reason`` instead of crashing).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# ROS sensor_msgs/Image encodings (and plain names) we accept; value: channels expected.
ENCODINGS = {
    "bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3, "8UC4": 4,
    "mono16": 1, "16UC1": 1, "bgr": 3, "rgb": 3, "gray": 1,
}


class FrameError(ValueError):
    """The input is not a usable image; the message says why."""


def to_bgr8(frame: Any, encoding: str = "bgr8", max_side: int = 4096) -> np.ndarray:
    """Return a contiguous (H, W, 3) uint8 BGR copy-or-view of ``frame``.

    ``encoding`` says how to read the channels (``rgb8``, ``bgra8``, ``mono8``, ...). Gray (H, W) or
    (H, W, 1) is expanded; 4 channels drop alpha; float images in [0, 1] and 16-bit images are scaled.
    """
    if frame is None:
        raise FrameError("frame is None")
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if encoding not in ENCODINGS:
        raise FrameError(f"unsupported encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}")
    if frame.ndim not in (2, 3):
        raise FrameError(f"frame must be (H, W) or (H, W, C), got shape {frame.shape}")
    if frame.size == 0 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"frame is empty (shape {frame.shape})")
    h, w = frame.shape[:2]
    if max(h, w) > max_side:
        raise FrameError(f"frame {w}x{h} exceeds the maximum side {max_side} (corrupt or unexpected input)")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels not in (1, 3, 4):
        raise FrameError(f"frame has {channels} channels; expected 1, 3 or 4")
    frame = _to_uint8(frame)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(frame.reshape(h, w)), cv2.COLOR_GRAY2BGR)
    expected = ENCODINGS[encoding]
    if expected == 1:  # the caller said mono but the array has colour: trust the array, assume BGR order
        expected = channels
    if channels != expected:
        raise FrameError(f"encoding {encoding!r} expects {expected} channels, frame has {channels}")
    rgb_order = encoding.startswith("rgb")
    if channels == 4:
        code = cv2.COLOR_RGBA2BGR if rgb_order else cv2.COLOR_BGRA2BGR
        return cv2.cvtColor(np.ascontiguousarray(frame), code)
    if rgb_order:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(frame)


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    if frame.dtype in (np.float32, np.float64, np.float16):
        if not np.all(np.isfinite(frame)):
            raise FrameError("float frame contains NaN or inf")
        top = float(frame.max()) if frame.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0  # [0, 1] images are scaled, [0, 255] ones are kept
        return np.clip(frame * scale, 0, 255).astype(np.uint8)
    raise FrameError(f"unsupported dtype {frame.dtype}; expected uint8, uint16 or float")
