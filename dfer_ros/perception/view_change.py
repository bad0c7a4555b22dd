"""Did a face's view change enough since a model stage last saw it? (the refresh events of the scheduler)

With freshness targets (``compute.expression_period``, ``compute.action_units_period``) a still face is re-estimated
only that often; a face that moves, turns or changes its expression must not wait for the period. So per (face,
stage) this module keeps the view that stage last ran on: the face's box and a 16x16 grey thumbnail of it (about
12 us per face, no model). A stage is *changed* for a face when, since then:
  * the box moved by more than ``compute.change_motion`` face heights, or its height changed by that fraction;
  * the same part of the image (the old box, so the detector's box jitter, about 5 % of the face height from frame
    to frame, does not count) differs by more than ``compute.change_appearance`` mean absolute grey levels (0-255,
    brightness drift removed): a head turn, an opening mouth, a hand in front of the face;
  * the caller forced it (an expression onset: the episode's shape is sampled from its start).
ROS-free and clock-free: the same frames give the same events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import cv2
import numpy as np

from dfer_ros.perception.config import ComputeConfig

THUMB = 16  # side of the grey thumbnail compared between views
SAMPLES = 4  # pixels a thumbnail pixel averages along each side


@dataclass
class View:
    box: np.ndarray  # x, y, w, h in frame pixels
    thumb: np.ndarray  # (THUMB, THUMB) float32 grey, its mean brightness removed (exposure drift is no change)


def view_of(bgr: np.ndarray, box: np.ndarray) -> Optional[View]:
    """The view of the face at ``box`` in ``bgr`` (None when the box lies outside the frame)."""
    h, w = bgr.shape[:2]
    x, y, bw, bh = np.asarray(box, np.float32).tolist()
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, math.ceil(x + bw)), min(h, math.ceil(y + bh))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    # a 64x64 grid of pixels first, then each 4x4 block averaged: 12 us a view where area-averaging the whole face
    # took 0.17 ms at 250 px, and a strided cut area-averaged from its odd size (INTER_AREA's slow path) 59 us
    grid = cv2.resize(bgr[y0:y1, x0:x1], (SAMPLES * THUMB, SAMPLES * THUMB), interpolation=cv2.INTER_NEAREST)
    grey = cv2.cvtColor(grid, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    return View(np.asarray(box, np.float32).copy(), thumb - cv2.mean(thumb)[0])


def motion(a: np.ndarray, b: np.ndarray) -> float:
    """Box change in face heights: the larger of the centre shift and the height change."""
    ax, ay, aw, ah = np.asarray(a).tolist()  # Python floats: numpy's per-call costs made this 5 us, now 1
    bx, by, bw, bh = np.asarray(b).tolist()
    height = max(ah, 1.0)
    return max(math.hypot(bx + bw / 2 - ax - aw / 2, by + bh / 2 - ay - ah / 2) / height, abs(bh - ah) / height)


def appearance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference of two thumbnails (``View.thumb``: mean brightness already removed)."""
    return float(np.abs(a - b).sum()) / a.size  # sum, then divide: ndarray.mean costs 3 us more


class ViewChanges:
    """Per (face, stage): the view the stage last ran on; ``changed`` says which stages a face's new view calls for."""

    def __init__(self, config: ComputeConfig):
        """``config``: the pipeline's compute section itself (``change_motion``, ``change_appearance``), so a
        reconfigured threshold applies from the next frame."""
        self.config = config
        self._bgr: Optional[np.ndarray] = None
        self._boxes: dict[str, np.ndarray] = {}
        self._seen: dict[tuple[str, str], View] = {}
        self._forced: set[tuple[str, str]] = set()
        self._cut: dict[bytes, Optional[View]] = {}  # this frame's views by box: stages and calls share them

    def reset(self) -> None:
        self._bgr, self._boxes, self._cut = None, {}, {}
        self._seen.clear()
        self._forced.clear()

    def new_frame(self) -> None:
        """A new image: the views cut from the last one are gone (call before the first ``changed`` on it)."""
        self._cut = {}

    def forget(self, face_ids: Iterable[str]) -> None:
        gone = set(face_ids)
        self._seen = {k: v for k, v in self._seen.items() if k[0] not in gone}
        self._forced = {k for k in self._forced if k[0] not in gone}

    def force(self, face_id: str, stage: str) -> None:
        """The next ``changed`` call reports ``stage`` for this face whatever its view."""
        self._forced.add((face_id, stage))

    def changed(self, bgr: np.ndarray, faces: dict[str, np.ndarray], stages: Iterable[str]) -> dict[str, frozenset]:
        """face id -> the stages whose last view of the face differs enough from its view now (``faces``: id -> box).
        A face a stage never saw is not reported here (new faces are the scheduler's own first priority)."""
        stages = tuple(stages)
        out: dict[str, frozenset] = {}
        if bgr is not self._bgr:  # another image (the pipeline also says so with ``new_frame``)
            self._cut = {}
        self._bgr, self._boxes = bgr, dict(faces)
        for fid, box in faces.items():
            hit = set()
            for stage in stages:
                seen = self._seen.get((fid, stage))
                if (fid, stage) in self._forced:
                    hit.add(stage)
                elif seen is not None:
                    now = self._view(seen.box)  # the same part of the image as then
                    if motion(seen.box, np.asarray(box, np.float32)) > self.config.change_motion or now is None \
                            or appearance(seen.thumb, now.thumb) > self.config.change_appearance:
                        hit.add(stage)
            if hit:
                out[fid] = frozenset(hit)
        return out

    def served(self, stage: str, face_ids: Iterable[str]) -> None:
        """``stage`` runs on these faces' views of the frame last passed to ``changed``: they become its reference."""
        for fid in face_ids:
            self._forced.discard((fid, stage))
            view = self._view(self._boxes[fid]) if fid in self._boxes else None
            if view is not None:
                self._seen[(fid, stage)] = view

    def _view(self, box: np.ndarray) -> Optional[View]:
        """``view_of`` the current frame at ``box``, cut once per frame and box."""
        key = np.asarray(box, np.float32).tobytes()
        if key not in self._cut:
            self._cut[key] = view_of(self._bgr, box)
        return self._cut[key]
