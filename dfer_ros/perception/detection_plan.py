"""Where the detector looks on each frame: cost that follows the faces, not the pixels.

A whole-frame scan at ``detection.max_side`` costs the same for one face as for fifty (about 12 ms on one
core at 320x240 with CenterFace) and misses faces smaller than about 32 px in the downscaled image. So
the front-end plans each frame's detection as a few *regions*, each cut from the full-resolution frame
and resized for the detector:

- ``scan``: the whole frame at ``max_side``. It finds new faces; while faces are tracked it runs on every
  ``scan_every``-th frame only (every frame while none are).
- ``tile``: on frames more than 1.5x ``max_side``, scan slots alternate between the whole frame and one
  tile of it at twice the scan's resolution (tiles overlap by two findable faces, and detections cut by
  an inner tile edge are dropped), so faces too small for the downscaled frame are found within a few
  cycles.
- ``roi``: a square around each tracked face not covered by this frame's scan (``ROI_CONTEXT`` x the face,
  resized to ``ROI_SIDE`` px so the face is about 32 px there): every tracked face is re-detected, with
  fresh landmarks, on every frame, at a cost that grows with the faces rather than the pixels.
- Faces too small for the ``max_side`` scan raise its resolution: a scan frame scans the whole frame at the
  resolution the smallest tracked face needs (so a crowd of small faces is found whole), and between
  scans that finer whole-frame scan replaces the regions when they would cost more (a crowd).

- A new (tentative) face is confirmed by the same pass that found it (that scan or tile runs again on the
  next detector frame, in the foreground), never by a region re-detection: a face that fills a 64 px region
  scores lower there, and a small face may be findable only in its tile. After a stamp gap longer than
  ``tracking.lost_seconds`` the whole frame is scanned at once (the tracked boxes are stale).

A face is *covered* by a scan when it lies inside the scanned area and is at least ``FINDABLE_FACE_PX``
high at the scan's resolution. Plans depend only on the frame size, the tracked boxes, the stamps and the
frame count, never on timing, so results are reproducible. Cost is counted in detector input pixels, which is
what the detector's time grows with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from dfer_ros.perception.tracking import iou_matrix
from dfer_ros.perception.types import Detection

FINDABLE_FACE_PX = 32  # face height in the detection image above which CenterFace/YuNet find faces reliably
FINE_SCAN_FACE_PX = 34  # face height a crowd's whole-frame scan is sized for (FINDABLE_FACE_PX and rounding)
ROI_SIDE = 64  # side of a re-detection region, detection-image pixels (a multiple of 32: no padding)
ROI_CONTEXT = 2.0  # region side / face side: half a face of margin all round for motion between frames
ROI_MIN_IOU = 0.1  # a region's detection must overlap the tracked box this much to be the same face
TILE_MIN_SCALE = 1.5  # frames at most this much larger than max_side are not tiled
EDGE_PX = 2.0  # a tile detection this close to an inner tile edge is cut by it and dropped
PAD_MULTIPLE = 32  # detectors pad inputs to a multiple of 32 (CenterFace): the cost counts the padding
REGION_OVERHEAD_PX = 3072  # fixed cost of one region (cutting, a session run, decoding) in input pixels of the same time
GREY = 127  # fill for region parts outside the frame
AREA_MAX_REDUCTION = 4  # beyond this reduction a region is sampled to twice its detection size before averaging


@dataclass(frozen=True)
class Region:
    """A rectangle of the full-resolution frame (may cross its border) and the detection-image size it is
    resized to; ``key`` is the tracked face a ``roi`` re-detects; ``inner`` the tile's inner edges
    (left, top, right, bottom) next to another tile."""

    kind: str  # "scan", "tile" or "roi"
    x: float
    y: float
    w: float
    h: float
    out_w: int
    out_h: int
    key: int = 0
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @property
    def scale(self) -> float:
        """Full-resolution pixels per detection-image pixel."""
        return self.w / self.out_w

    @property
    def cost(self) -> int:
        """Detector input pixels, padded as the detector pads them, plus the per-region overhead."""
        return _padded(self.out_w) * _padded(self.out_h) + REGION_OVERHEAD_PX

    def covers(self, box: np.ndarray) -> bool:
        """Whether a face at ``box`` (x, y, w, h) is findable in this region (inside it and large enough)."""
        if self.kind == "roi":
            return False
        x, y, w, h = (float(v) for v in box)
        left, top, right, bottom = self.inner_margins
        inside = x >= self.x + left and y >= self.y + top and x + w <= self.x + self.w - right \
            and y + h <= self.y + self.h - bottom
        return inside and h / self.scale >= FINDABLE_FACE_PX

    @property
    def inner_margins(self) -> tuple[float, ...]:
        """Full-resolution margins (left, top, right, bottom) within which a face is cut by an inner tile edge."""
        return tuple(EDGE_PX * self.scale if inner else 0.0 for inner in self.inner)


def _padded(n: int) -> int:
    return -(-int(n) // PAD_MULTIPLE) * PAD_MULTIPLE


def whole_frame(width: int, height: int, side: float, kind: str = "scan") -> Region:
    """The whole frame downscaled so its larger side is ``side`` (never upscaled)."""
    factor = min(1.0, side / max(width, height))
    return Region(kind, 0.0, 0.0, float(width), float(height), max(1, int(round(width * factor))),
                  max(1, int(round(height * factor))))


def fine_tiles(width: int, height: int, max_side: int) -> list[Region]:
    """Overlapping tiles covering the frame at twice the whole-frame scan's resolution, each at most
    ``max_side`` on its larger side; none when the frame is not much larger than ``max_side``."""
    coarse = max(width, height) / max_side
    if coarse < TILE_MIN_SCALE:
        return []
    scale = max(1.0, coarse / 2.0)  # full pixels per tile pixel
    # the whole-frame scan (half this resolution) covers faces from two findable heights here up, so tiles
    # overlap enough for any smaller face to lie wholly inside one, clear of the inner-edge margins
    overlap = (2 * FINDABLE_FACE_PX + 2 * EDGE_PX + 2) * scale
    step = max_side * scale - overlap

    def spans(length: int) -> list[tuple[float, float]]:
        n = max(1, math.ceil((length - overlap) / step))
        size = min(float(length), (length + (n - 1) * overlap) / n)
        return [(i * (length - size) / max(1, n - 1), size) for i in range(n)]

    xs, ys = spans(width), spans(height)
    tiles = []
    for j, (y, th) in enumerate(ys):
        for i, (x, tw) in enumerate(xs):
            inner = (i > 0, j > 0, i < len(xs) - 1, j < len(ys) - 1)
            tiles.append(Region("tile", x, y, tw, th, max(1, int(round(tw / scale))), max(1, int(round(th / scale))),
                                inner=inner))
    return tiles


def roi(key: int, box: np.ndarray) -> Region:
    """The re-detection square around a tracked box."""
    x, y, w, h = (float(v) for v in box)
    side = ROI_CONTEXT * max(w, h, 1.0)
    return Region("roi", x + w / 2 - side / 2, y + h / 2 - side / 2, side, side, ROI_SIDE, ROI_SIDE, key=key)


@dataclass
class DetectionPlan:
    """One frame's detector work: ``regions`` to detect now, and a whole-frame scan (or tile) for new faces
    that may run in the ``background`` beside the rest of the frame (its faces join the tracker a frame later)."""

    regions: list[Region]
    background: Optional[Region] = None


class DetectionPlanner:
    """Decides each frame's regions; ``plan`` once per detector frame, ``reset`` with the tracker.

    ``background``: while faces are tracked, scans for new faces are handed out as ``DetectionPlan.background``
    (every tracked face is then re-detected in its region, or by the finer whole-frame scan in a crowd), so
    the frame's critical path never waits for a whole-frame scan.
    """

    def __init__(self, max_side: int, scan_every: int = 1, fine_scan: bool = True, background: bool = False):
        self.max_side = int(max_side)
        self.scan_every = int(scan_every)
        self.fine_scan = bool(fine_scan)
        self.background = bool(background)
        self.reset()

    def reset(self) -> None:
        self._frames = 0
        self._slot = 0
        self._tiles: list[Region] = []
        self._size: Optional[tuple[int, int]] = None

    def plan(self, width: int, height: int, tracked: Sequence[tuple[int, np.ndarray]],
             confirm: Sequence[Region] = (), rescan: bool = False, coasting: int = 0,
             scan_wanted: Optional[Callable[[Region], bool]] = None) -> DetectionPlan:
        """The detector work for a ``width`` x ``height`` frame with ``tracked`` (key, search box) faces.

        ``confirm``: the scans (or tiles) that found the tentative faces on the previous detector frame; each
        runs again now, in the foreground, so a new face is confirmed by the same kind of pass that found it
        (a region re-detection can miss a face a scan found: CenterFace scores a face that fills the region
        lower, and a tile may be the only view in which a small face is findable). ``rescan``: scan the whole
        frame now, in the foreground, whatever the cycle (after a stamp gap the tracked boxes are stale).
        ``coasting``: tracked faces not re-detected on this frame (not in ``tracked``; they count as tracked faces for
        the scan cycle). ``scan_wanted``: when a scan is due by the cycle, the first scan region in turn it accepts
        is scanned, and none when it accepts none (``scene_change``: no region's image changed since its last scan);
        None: the next region in turn.
        """
        self._fit(width, height)
        tracking = bool(tracked) or coasting > 0
        scan_frame = rescan or self.scan_due(tracking)
        self._frames += 1
        scan = self._next_scan(width, height, None if rescan else scan_wanted) if scan_frame else None
        if rescan and scan is not None and scan.kind != "scan":
            scan = whole_frame(width, height, self.max_side)
        background = None
        if scan is not None and tracking and self.background and not rescan and scan not in confirm:
            background, scan = scan, None  # tracked faces are re-detected below; the scan only finds new ones
        confirming = list(dict.fromkeys(r for r in confirm if r != scan))  # the same region once
        foreground = ([scan] if scan is not None else []) + confirming
        uncovered = [(k, b) for k, b in tracked if not any(r.covers(b) for r in foreground)]
        if uncovered:
            fine = self._crowd_scan(width, height, [b for _, b in uncovered])
            # a whole-frame scan looks at least as finely as the faces already seen need (a crowd of small
            # faces is then found whole, not one tile at a time); otherwise the finer whole frame replaces
            # the regions when it costs less
            finer_scan = any(r.kind == "scan" for r in foreground) or (background is not None and background.kind == "scan")
            if fine is not None and (finer_scan or fine.cost < sum(roi(k, b).cost for k, b in uncovered)):
                scan = fine
                uncovered = [(k, b) for k, b in uncovered if not fine.covers(b)]
                background = None  # this scan finds the new faces too, now
                confirming = [r for r in confirming if r.kind != "scan"]  # and what a coarser whole frame found
        regions = ([scan] if scan is not None else []) + [r for r in confirming if r != scan]
        return DetectionPlan(regions + [roi(k, b) for k, b in uncovered], background)

    def _fit(self, width: int, height: int) -> None:
        """The fine tiles of a ``width`` x ``height`` frame (made again, and the scan slots restarted, when the size
        changes)."""
        if self._size != (width, height):
            self._size = (width, height)
            self._tiles = fine_tiles(width, height, self.max_side) if self.fine_scan else []
            self._slot = 0

    def scan_due(self, tracking: bool) -> bool:
        """Whether the next planned frame scans for new faces (always when nothing is ``tracking``)."""
        return not tracking or self.scan_every <= 1 or self._frames % self.scan_every == 0

    def background_scan(self, width: int, height: int,
                        wanted: Optional[Callable[[Region], bool]] = None) -> Optional[Region]:
        """The scan due on a frame the detector skips (``scan_due``), for the scan thread (None: ``wanted`` took
        none); the frame counts as ``skip`` counts it."""
        self._fit(width, height)
        self._frames += 1
        return self._next_scan(width, height, wanted)

    def skip(self) -> None:
        """A frame the detector skipped while tracking (``detection.redetect_period``): it counts in the scan cycle,
        so new faces are looked for every ``scan_every`` frames whatever the re-detection rate."""
        self._frames += 1

    def _next_scan(self, width: int, height: int, wanted: Optional[Callable[[Region], bool]] = None
                   ) -> Optional[Region]:
        """The next scan slot: the whole frame, alternating with the fine tiles in turn when there are any. With
        ``wanted``: the first slot in turn it accepts (the slots before it are passed over), None when none."""
        slots = 2 * len(self._tiles) if self._tiles else 1
        for step in range(slots if wanted is not None else 1):
            region = self._slot_region(width, height, self._slot + step)
            if wanted is None or wanted(region):
                self._slot += step + 1
                return region
        return None

    def _slot_region(self, width: int, height: int, slot: int) -> Region:
        if not self._tiles or slot % 2 == 0:
            return whole_frame(width, height, self.max_side)
        return self._tiles[(slot // 2) % len(self._tiles)]

    def _crowd_scan(self, width: int, height: int, boxes: Sequence[np.ndarray]) -> Optional[Region]:
        """The whole frame at the resolution that makes the smallest of ``boxes`` ``FINE_SCAN_FACE_PX`` high
        (at most the native resolution); None when that is no finer than the regular scan."""
        smallest = min(float(b[3]) for b in boxes)  # face height, as FINDABLE_FACE_PX counts it
        scale = max(1.0, smallest / FINE_SCAN_FACE_PX)
        side = max(width, height) / scale
        if side <= self.max_side:
            return None
        return whole_frame(width, height, side)


def cut_region(frame_bgr: np.ndarray, region: Region) -> tuple[np.ndarray, Region]:
    """The detection image of ``region`` (its part of the frame resized into an (out_h, out_w) grey canvas)
    and the region it exactly shows after rounding to whole pixels (map detections back with that one)."""
    h, w = frame_bgr.shape[:2]
    x0, y0 = max(0, int(round(region.x))), max(0, int(round(region.y)))
    x1, y1 = min(w, int(round(region.x + region.w))), min(h, int(round(region.y + region.h)))
    if x1 <= x0 or y1 <= y0:  # wholly outside the frame: nothing to find
        return np.full((region.out_h, region.out_w, 3), GREY, np.uint8), region
    sx, sy = region.out_w / region.w, region.out_h / region.h
    # x0 rounds to the nearest pixel, which may lie up to half a pixel before region.x: never a negative offset
    px, py = max(0, int(round((x0 - region.x) * sx))), max(0, int(round((y0 - region.y) * sy)))
    cw = max(1, min(region.out_w - px, int(round((x1 - x0) * sx))))
    ch = max(1, min(region.out_h - py, int(round((y1 - y0) * sy))))
    crop = frame_bgr if (x0, y0, x1, y1) == (0, 0, w, h) else frame_bgr[y0:y1, x0:x1]  # whole frame: no copy
    if (cw, ch) != (x1 - x0, y1 - y0):
        if cw * AREA_MAX_REDUCTION < x1 - x0 and ch * AREA_MAX_REDUCTION < y1 - y0:
            # area averaging costs in proportion to the pixels it reads: a 380 px region into 64 px took 0.41 ms;
            # sampled down to twice the size first, then averaged, it takes 0.03 ms
            crop = cv2.resize(crop, (2 * cw, 2 * ch), interpolation=cv2.INTER_LINEAR)
        crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if cw < crop.shape[1] else cv2.INTER_LINEAR)
    kx, ky = (x1 - x0) / cw, (y1 - y0) / ch  # full-resolution pixels per detection pixel, exactly
    shown = Region(region.kind, x0 - px * kx, y0 - py * ky, region.out_w * kx, region.out_h * ky, region.out_w,
                   region.out_h, region.key, region.inner)
    if (px, py, cw, ch) == (0, 0, region.out_w, region.out_h):
        return np.ascontiguousarray(crop), shown
    canvas = np.full((region.out_h, region.out_w, 3), GREY, np.uint8)
    canvas[py:py + ch, px:px + cw] = crop
    return canvas, shown


def to_frame(found: Sequence[Detection], region: Region) -> list[Detection]:
    """Detections in ``region``'s detection-image pixels -> full-resolution pixels."""
    sx, sy = region.w / region.out_w, region.h / region.out_h
    scale = np.array([sx, sy], np.float32)
    origin = np.array([region.x, region.y], np.float32)
    out = []
    for det in found:
        box = det.box.astype(np.float32).copy()
        box[:2] = box[:2] * scale + origin
        box[2:] = box[2:] * scale
        landmarks = None if det.landmarks is None else det.landmarks.astype(np.float32) * scale + origin
        out.append(Detection(box=box, score=float(det.score), landmarks=landmarks))
    return out


def keep_for_region(found: Sequence[Detection], region: Region, tracked_box: Optional[np.ndarray] = None) -> list[Detection]:
    """What a region contributes (full-resolution detections): a tile drops faces cut by its inner edges;
    a roi keeps only the detection overlapping its tracked face best (neighbours are re-detected in
    their own regions, and a roi never starts a track for a face it was not cut for)."""
    if region.kind == "tile":
        return [d for d in found if _clear_of_inner_edges(d.box, region)]
    if region.kind == "roi" and tracked_box is not None:
        if not found:
            return []
        iou = iou_matrix(np.asarray([tracked_box], np.float32), np.stack([d.box for d in found]))[0]
        best = int(np.argmax(iou))
        return [found[best]] if iou[best] >= ROI_MIN_IOU else []
    return list(found)


def _clear_of_inner_edges(box: np.ndarray, region: Region) -> bool:
    x, y, w, h = (float(v) for v in box)
    left, top, right, bottom = region.inner_margins
    return not ((left and x <= region.x + left) or (top and y <= region.y + top)
                or (right and x + w >= region.x + region.w - right)
                or (bottom and y + h >= region.y + region.h - bottom))
