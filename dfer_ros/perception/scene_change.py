"""Whether the image outside the tracked faces changed since the last scan for new faces.

While faces are tracked, whole-image scans look for new ones on every ``detection.scan_every``-th detector run,
and on every run while none is in view. They were the largest fixed cost of a camera: at 1 face over DDS the scan
thread took 0.041-0.046 of a core, a sixth of the node, and an empty room 0.60 of a core, a scan on every image
(docs/benchmarks.md#cpu-per-camera). A new face changes the image where it appears: a person
walks in, turns round, leans out from behind someone. So when a scan falls due, the scan regions in turn (the
whole frame, then each fine tile) are looked at for one whose part of the image, outside the tracked faces,
changed since that region's last scan; when none did, the scan waits, at most
``detection.idle_scan_period`` seconds after the last one (for a face that stands still where no scan found it
yet), and the regions then take their turns as before.

The comparison is on a 32x24 grey thumbnail (cells of 20x20 px at 640x480): a cell counts as changed when its
mean moved by more than ``CHANGE_LEVEL`` grey levels. The webcam video's static background moved by at most 4
between scans (sensor noise, compression); a face entering moves its cells by tens. A camera that moves, or an
exposure change, changes every cell, so scans go on as before. Pixels only: the same frames give the same
decisions, whatever the machine's load.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

THUMB_SIZE = (32, 24)  # (width, height) of the grey thumbnail compared between scans
CHANGE_LEVEL = 12.0  # grey levels a thumbnail cell's mean must move to count as a change
# face sizes around a tracked face masked with it (its own motion, the box's jitter). Not the body below it: a mask
# three face heights deep hid a new face in the row below a row of faces (a class, an audience), and the webcam
# video's scans found no change outside the faces with or without it (a one-off check over its frames)
MARGIN = 0.5


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """The grey ``THUMB_SIZE`` thumbnail of a BGR (or grey) uint8 frame, as float32."""
    grey = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


def outside_faces(width: int, height: int, boxes: Sequence[np.ndarray]) -> np.ndarray:
    """Thumbnail cells (True) not covered by any tracked face (x, y, w, h in frame pixels) and its margin."""
    tw, th = THUMB_SIZE
    mask = np.ones((th, tw), bool)
    for box in boxes:
        x, y, w, h = (float(v) for v in box[:4])
        mask[_cells(x - MARGIN * w, y - MARGIN * h, x + w + MARGIN * w, y + h + MARGIN * h, (width, height))] = False
    return mask


def _cells(x0: float, y0: float, x1: float, y1: float, size: tuple[int, int]) -> tuple[slice, slice]:
    """The thumbnail rows and columns that the frame rectangle from (x0, y0) to (x1, y1) overlaps (frame pixels of a
    ``size`` frame; it may cross the frame's border)."""
    tw, th = THUMB_SIZE
    sx, sy = tw / float(size[0]), th / float(size[1])
    c0, c1 = int(np.floor(x0 * sx)), int(np.ceil(x1 * sx))
    r0, r1 = int(np.floor(y0 * sy)), int(np.ceil(y1 * sy))
    return slice(max(0, r0), max(0, min(th, r1))), slice(max(0, c0), max(0, min(tw, c1)))


class SceneWatch:
    """Per scan region (the whole frame, each fine tile): the thumbnail at its last scan, and whether this frame
    differs from it inside the region, outside the tracked faces.

    Per region, because a change must wait for a scan that can find what changed: a small face that only its
    tile finds is not found by the whole-frame scan that runs first, and that scan must not count the change as
    looked at for the tile."""

    def __init__(self):
        self._references: dict[tuple, np.ndarray] = {}  # region rectangle -> thumbnail at its last scan
        self._size: Optional[tuple[int, int]] = None
        self._frame: Optional[tuple[np.ndarray, np.ndarray]] = None  # this frame's (thumbnail, outside-faces mask)
        self.scanned_at: Optional[float] = None  # stamp of the last scan of any region (None: none since the reset)

    def reset(self) -> None:
        self._references.clear()
        self._size, self._frame, self.scanned_at = None, None, None

    def new_frame(self, bgr: np.ndarray, boxes: Sequence[np.ndarray]) -> None:
        """The frame the next ``changed`` and ``scanned`` calls are about, with its tracked faces' boxes."""
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._references.clear()
            self._size = size
        self._frame = (thumbnail(bgr), outside_faces(size[0], size[1], boxes))

    def idle_for(self, stamp: float, period: float) -> bool:
        """Whether a scan ran less than ``period`` seconds before ``stamp`` (scans may wait for a change)."""
        return period > 0 and self.scanned_at is not None and 0.0 <= stamp - self.scanned_at < period

    def changed(self, region) -> bool:
        """Whether this frame differs from the one of ``region``'s last scan by more than ``CHANGE_LEVEL`` in a
        thumbnail cell inside the region and outside the tracked faces (True for a region never scanned)."""
        reference = self._references.get(_key(region))
        if reference is None or self._frame is None:
            return True
        thumb, outside = self._frame
        cells = outside & _inside(region, self._size)
        return bool(cells.any()) and float(np.abs(thumb - reference)[cells].max()) > CHANGE_LEVEL

    def scanned(self, region, stamp: float) -> None:
        """``region`` was scanned on this frame: its later frames are compared with this one."""
        if self._frame is not None:
            self._references[_key(region)] = self._frame[0]
        self.scanned_at = float(stamp)


def _key(region) -> tuple:
    return (round(float(region.x), 1), round(float(region.y), 1), round(float(region.w), 1), round(float(region.h), 1))


def _inside(region, size: tuple[int, int]) -> np.ndarray:
    """Thumbnail cells that overlap ``region`` (x, y, w, h in frame pixels; it may cross the frame's border)."""
    tw, th = THUMB_SIZE
    mask = np.zeros((th, tw), bool)
    mask[_cells(region.x, region.y, region.x + region.w, region.y + region.h, size)] = True
    return mask
