"""Expression episodes per face: onset, apex and offset, instead of a probability vector per frame.

A behaviour tree wants "f2 started smiling at t1, peaked at t2, stopped at t3", not 30 label flips a
second. ``ExpressionEvents`` watches each face's (smoothed) expression probabilities, one label at a time:

* an episode of label L STARTS at the first frame with p(L) >= ``onset_threshold``;
* it ENDS at the first later frame with p(L) < ``offset_threshold`` (hysteresis: offset < onset, so a
  probability wobbling around one threshold does not open and close episodes), when the face's frames stop
  for more than ``max_gap_seconds`` (e.g. the face turned away and the pipeline abstained), or when the
  track ends;
* it is CONFIRMED once it has lasted ``min_duration_seconds`` (stamp time) while still open. Only confirmed
  episodes produce events: ``onset`` at the confirming frame (carrying the onset stamp, the peak so far)
  and ``offset`` when it ends (onset, apex, offset stamps, duration, peak probability, mean intensity).
  An episode that ends before confirmation produces nothing, so no event is shorter than the minimum and
  alternating noise produces none.

Stamps are the source images' stamps. The offset stamp is the frame where p fell below the offset
threshold ("relaxed"), or the last frame of the face seen ("gap", "track_ended"). The apex is the first
frame with the highest probability; the mean intensity is the mean probability over the episode's
frames up to (not including) the offset frame. Only frames the pipeline did not abstain on are fed.
Several labels may be in an episode at once (each label has its own state). Labels in
``exclude_labels`` (default ``neutral``: the resting face is not an event; any spelling of the label,
``vocabulary.canonical_expression``) are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from dfer_ros.perception.config import EventConfig
from dfer_ros.vocabulary import canonical_expression

ONSET = "onset"
OFFSET = "offset"

END_RELAXED = "relaxed"  # probability fell below the offset threshold
END_GAP = "gap"  # no frame of the face for longer than max_gap_seconds
END_TRACK = "track_ended"  # the face's track ended (left the view, lost, or the pipeline was reset)

STAMP_TOLERANCE = 1e-6  # seconds; float sums of frame intervals must not miss a duration by 1e-15


@dataclass
class ExpressionEvent:
    """One onset or offset of an expression episode of one face."""

    kind: str  # ONSET or OFFSET
    face_id: str
    label: str
    episode: int  # 1, 2, ... per face, over its confirmed episodes: the onset and offset of one episode share it
    stamp: float  # the frame that produced this event (confirmation frame for onset, ending frame for offset)
    onset_stamp: float
    apex_stamp: float  # so far, for an onset
    offset_stamp: Optional[float]  # None for an onset
    duration: float  # seconds from onset to offset (to the confirmation frame for an onset)
    peak_probability: float
    mean_intensity: float  # mean probability over the episode's frames
    end_reason: str = ""  # OFFSET only: END_RELAXED, END_GAP or END_TRACK
    person_id: str = ""  # filled by whoever knows persons; empty when unknown


@dataclass
class _Episode:
    label: str
    episode: int
    onset: float
    apex: float
    peak: float
    last: float
    total: float = 0.0
    frames: int = 0
    confirmed: bool = False

    def add(self, stamp: float, p: float) -> None:
        if p > self.peak:
            self.peak, self.apex = p, stamp
        self.total += p
        self.frames += 1
        self.last = stamp


@dataclass
class _FaceState:
    last_stamp: Optional[float] = None
    episodes: dict[str, _Episode] = field(default_factory=dict)
    counter: int = 0


class ExpressionEvents:
    """Episode state of every face; ``update`` per fed frame, ``end_track`` when a track ends."""

    def __init__(self, config: Optional[EventConfig] = None):
        self.config = config or EventConfig()
        self._faces: dict[str, _FaceState] = {}

    def __len__(self) -> int:
        return len(self._faces)

    def open_labels(self, face_id: str) -> list[str]:
        """Labels of the face's confirmed open episodes (what it is expressing now, per the events)."""
        state = self._faces.get(face_id)
        return [] if state is None else [e.label for e in state.episodes.values() if e.confirmed]

    def update(self, face_id: str, stamp: float, labels: Sequence[str], probs: np.ndarray) -> list[ExpressionEvent]:
        """Feed one non-abstained frame of a face; returns the events it produced (usually none)."""
        cfg = self.config
        if not cfg.enabled:
            return []
        state = self._faces.setdefault(face_id, _FaceState())
        events: list[ExpressionEvent] = []
        if state.last_stamp is not None and stamp - state.last_stamp > cfg.max_gap_seconds + STAMP_TOLERANCE:
            events += self._close_all(face_id, state, END_GAP, stamp)
        state.last_stamp = stamp
        probs = np.asarray(probs, np.float64)
        excluded = {canonical_expression(x) for x in cfg.exclude_labels}
        for label, p in zip(labels, probs):
            label = str(label).lower()
            if canonical_expression(label) in excluded or not np.isfinite(p):
                continue
            p = float(p)
            ep = state.episodes.get(label)
            if ep is None:
                if p >= cfg.onset_threshold:
                    ep = state.episodes[label] = _Episode(label, 0, onset=stamp, apex=stamp, peak=p, last=stamp)
                    ep.add(stamp, p)
                    events += self._maybe_confirm(face_id, state, ep, stamp)
                continue
            if p < cfg.offset_threshold:
                del state.episodes[label]
                if ep.confirmed:
                    events.append(self._offset(face_id, ep, stamp, stamp, END_RELAXED))
                continue
            ep.add(stamp, p)
            events += self._maybe_confirm(face_id, state, ep, stamp)
        return events

    def expire(self, now: float) -> list[ExpressionEvent]:
        """Close the open episodes of faces not fed for more than ``max_gap_seconds`` before ``now``.

        Called once per processed frame, so a face that stays tracked but is abstained on (turned away)
        gets its offset in time rather than at its next usable frame."""
        events: list[ExpressionEvent] = []
        for face_id, state in self._faces.items():
            if state.episodes and state.last_stamp is not None and now - state.last_stamp > self.config.max_gap_seconds + STAMP_TOLERANCE:
                events += self._close_all(face_id, state, END_GAP, now)
        return events

    def end_track(self, face_id: str, now: Optional[float] = None) -> list[ExpressionEvent]:
        """The face's track ended: close its confirmed episodes at its last fed frame, forget the face.

        ``now`` is the stamp of the frame that noticed it (the events' header stamp); default: the last fed frame."""
        state = self._faces.pop(face_id, None)
        return [] if state is None else self._close_all(face_id, state, END_TRACK, now)

    def end_all(self, now: Optional[float] = None) -> list[ExpressionEvent]:
        """End every face (pipeline reset); returns their offsets."""
        events: list[ExpressionEvent] = []
        for face_id in list(self._faces):
            events += self.end_track(face_id, now)
        return events

    # ------------------------------------------------------------------ helpers
    def _maybe_confirm(self, face_id: str, state: _FaceState, ep: _Episode, stamp: float) -> list[ExpressionEvent]:
        if ep.confirmed or stamp - ep.onset + STAMP_TOLERANCE < self.config.min_duration_seconds:
            return []
        ep.confirmed = True
        state.counter += 1  # only confirmed episodes are numbered: a consumer sees 1, 2, 3, ...
        ep.episode = state.counter
        return [ExpressionEvent(kind=ONSET, face_id=face_id, label=ep.label, episode=ep.episode, stamp=stamp,
                                onset_stamp=ep.onset, apex_stamp=ep.apex, offset_stamp=None,
                                duration=stamp - ep.onset, peak_probability=ep.peak,
                                mean_intensity=ep.total / max(ep.frames, 1))]

    def _offset(self, face_id: str, ep: _Episode, stamp: float, offset: float, reason: str) -> ExpressionEvent:
        return ExpressionEvent(kind=OFFSET, face_id=face_id, label=ep.label, episode=ep.episode, stamp=stamp,
                               onset_stamp=ep.onset, apex_stamp=ep.apex, offset_stamp=offset,
                               duration=offset - ep.onset, peak_probability=ep.peak,
                               mean_intensity=ep.total / max(ep.frames, 1), end_reason=reason)

    def _close_all(self, face_id: str, state: _FaceState, reason: str,
                   now: Optional[float]) -> list[ExpressionEvent]:
        events = [self._offset(face_id, ep, ep.last if now is None else now, ep.last, reason)
                  for ep in state.episodes.values() if ep.confirmed]
        state.episodes.clear()
        return events
