"""Per-track bounded ring buffers of (stamp, embedding) for the temporal head.

Only embeddings are kept (a few hundred floats per frame), never images, so memory stays flat
however long a face is tracked. The window is bounded in frames and in seconds; a gap in a track
(the face was not encoded for a while) empties the buffer first, because the head must not see two
separated moments as one continuous clip. When a stamp goes backwards (a bag looping, sim time
restarted) every buffer is emptied with a logged reason.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Optional

import numpy as np

from dfer_ros.perception.config import BufferConfig

log = logging.getLogger(__name__)


class TrackBuffer:
    """The last embeddings of one track, oldest first."""

    def __init__(self, max_frames: int, max_seconds: float, gap_reset_seconds: float):
        self.max_seconds = float(max_seconds)
        self.gap_reset_seconds = float(gap_reset_seconds)
        self._stamps: deque[float] = deque(maxlen=int(max_frames))
        self._embeddings: deque[np.ndarray] = deque(maxlen=int(max_frames))
        self.resets = 0

    def __len__(self) -> int:
        return len(self._stamps)

    def append(self, stamp: float, embedding: np.ndarray) -> Optional[str]:
        """Add one embedding; returns the reason when the buffer was emptied first, else None."""
        reason = None
        if self._stamps:
            last = self._stamps[-1]
            if stamp < last:
                reason = f"stamp went backwards ({last:.3f} -> {stamp:.3f})"
            elif stamp - last > self.gap_reset_seconds:
                reason = f"gap of {stamp - last:.3f} s > {self.gap_reset_seconds:.3f} s"
            elif stamp == last:  # the same frame twice: keep the newer embedding
                self._stamps.pop()
                self._embeddings.pop()
        if reason:
            self.clear()
            self.resets += 1
        self._stamps.append(float(stamp))
        self._embeddings.append(np.asarray(embedding, np.float32))
        if self.max_seconds > 0:
            while len(self._stamps) > 1 and stamp - self._stamps[0] > self.max_seconds:
                self._stamps.popleft()
                self._embeddings.popleft()
        return reason

    def merge(self, stamp: float, columns: slice, values: np.ndarray, dim: int, fill: float) -> Optional[str]:
        """Write one encoder stage's ``columns`` of the embedding of the frame stamped ``stamp``.

        Stages of one frame may finish at different times (the scheduler runs them on different frames or
        threads): a row for ``stamp`` that exists already gets the columns filled in place; otherwise a new
        row (``fill`` elsewhere) goes in stamp order: appended when newest (with ``append``'s gap and window
        rules), inserted when older. A result older than the whole window is dropped: returns the reason, None
        when the values were stored.
        """
        stamp = float(stamp)
        for i in range(len(self._stamps) - 1, -1, -1):
            if self._stamps[i] == stamp:
                self._embeddings[i][columns] = values
                return None
            if self._stamps[i] < stamp:
                break
        row = np.full(dim, fill, np.float32)
        row[columns] = values
        if not self._stamps or stamp > self._stamps[-1]:
            reason = self.append(stamp, row)
            if reason:
                log.info("track buffer emptied before a new frame: %s", reason)
            return None
        if stamp < self._stamps[0]:
            return f"result for {stamp:.3f} is older than the window (from {self._stamps[0]:.3f})"
        index = next(i for i, s in enumerate(self._stamps) if s > stamp)
        if len(self._stamps) == self._stamps.maxlen:  # full: the oldest row makes room
            self._stamps.popleft()
            self._embeddings.popleft()
            index -= 1
        self._stamps.insert(index, stamp)
        self._embeddings.insert(index, row)
        return None

    def clear(self) -> None:
        self._stamps.clear()
        self._embeddings.clear()

    def window(self) -> np.ndarray:
        """(T, D) float32, oldest first."""
        return np.stack(self._embeddings) if self._embeddings else np.zeros((0, 0), np.float32)

    @property
    def seconds(self) -> float:
        """Time spanned by the window (0 for one frame)."""
        return float(self._stamps[-1] - self._stamps[0]) if self._stamps else 0.0

    @property
    def last_stamp(self) -> Optional[float]:
        return self._stamps[-1] if self._stamps else None


class TrackBuffers:
    """All tracks' buffers, keyed by face id; freed when a track ends."""

    def __init__(self, config: Optional[BufferConfig] = None, max_frames: Optional[int] = None):
        self.config = config or BufferConfig()
        self.max_frames = min(self.config.window_frames, max_frames) if max_frames else self.config.window_frames
        self._buffers: dict[str, TrackBuffer] = {}
        self._last_stamp: Optional[float] = None

    def __len__(self) -> int:
        return len(self._buffers)

    def __contains__(self, face_id: str) -> bool:
        return face_id in self._buffers

    def get(self, face_id: str) -> TrackBuffer:
        buf = self._buffers.get(face_id)
        if buf is None:
            buf = TrackBuffer(self.max_frames, self.config.window_seconds, self.config.gap_reset_seconds)
            self._buffers[face_id] = buf
        return buf

    def check_time(self, stamp: float) -> bool:
        """Call once per frame before appending; resets everything (True) when the stamp went backwards."""
        went_back = self._last_stamp is not None and stamp < self._last_stamp
        if went_back:
            log.warning("track buffers: stamp went backwards (%.3f -> %.3f), e.g. a bag loop; "
                        "clearing %d buffer(s)", self._last_stamp, stamp, len(self._buffers))
            self.reset()
        self._last_stamp = stamp
        return went_back

    def append(self, face_id: str, stamp: float, embedding: np.ndarray) -> Optional[str]:
        reason = self.get(face_id).append(stamp, embedding)
        if reason:
            log.info("track buffer %s reset: %s", face_id, reason)
        return reason

    def merge(self, face_id: str, stamp: float, columns: slice, values: np.ndarray, dim: int,
              fill: float) -> Optional[str]:
        reason = self.get(face_id).merge(stamp, columns, values, dim, fill)
        if reason:
            log.info("track buffer %s: %s", face_id, reason)
        return reason

    def free(self, face_id: str) -> None:
        self._buffers.pop(face_id, None)

    def reconfigure(self, head_max_frames: Optional[int] = None) -> None:
        """Apply ``self.config`` after an in-place change: the frame cap for new faces, the time limits for all."""
        cap = self.config.window_frames
        self.max_frames = min(cap, head_max_frames) if head_max_frames else cap
        for buf in self._buffers.values():
            buf.max_seconds = float(self.config.window_seconds)
            buf.gap_reset_seconds = float(self.config.gap_reset_seconds)

    def reset(self) -> None:
        self._buffers.clear()
        self._last_stamp = None

    def ids(self) -> list[str]:
        return list(self._buffers)
