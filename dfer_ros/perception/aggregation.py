"""Per-track temporal smoothing of what the model says, so published labels do not flicker.

Probabilities, valence-arousal and action units are averaged with exponential weights whose
half-life is in seconds of stamp time (a 5 fps and a 30 fps stream smooth over the same duration).
The published top label has hysteresis: it switches only when another label's smoothed probability
beats the current one's by ``switch_margin`` continuously for ``switch_min_seconds``. The per-frame
estimate stays available next to the aggregated one; with ``enabled: false`` the aggregate is simply
the latest estimate.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from dfer_ros.perception.config import AggregationConfig
from dfer_ros.perception.types import AffectEstimate


class TrackAggregator:
    """Smoothing state of one track."""

    def __init__(self, config: AggregationConfig):
        self.config = config
        self.last_stamp: Optional[float] = None
        self.probs: Optional[np.ndarray] = None
        self.valence = float("nan")
        self.arousal = float("nan")
        self.va_confidence = 0.0
        self.aus: Optional[np.ndarray] = None
        self.compound: Optional[np.ndarray] = None
        self.label_index: Optional[int] = None
        self._candidate: Optional[int] = None
        self._candidate_since = 0.0
        self.flips = 0

    def update(self, estimate: AffectEstimate, stamp: float) -> tuple[AffectEstimate, str, float]:
        """Fold in one frame's estimate; returns (aggregated estimate, published label, its confidence)."""
        cfg = self.config
        if not cfg.enabled:
            idx = int(np.argmax(estimate.expression_probs)) if len(estimate.expression_probs) else None
            self._set_label(idx)
            conf = float(estimate.expression_probs[idx]) if idx is not None else 0.0
            return estimate, estimate.top_expression, conf
        dt = 0.0 if self.last_stamp is None else max(0.0, stamp - self.last_stamp)
        alpha = 1.0 if self.last_stamp is None else 1.0 - 0.5 ** (dt / cfg.half_life_seconds)
        self.last_stamp = stamp
        self.probs = _ewm(self.probs, estimate.expression_probs, alpha)
        if estimate.has_va:
            if not np.isfinite(self.valence):  # first finite VA of this track
                self.valence, self.arousal = float(estimate.valence), float(estimate.arousal)
                self.va_confidence = float(estimate.va_confidence)
            else:
                self.valence += alpha * (float(estimate.valence) - self.valence)
                self.arousal += alpha * (float(estimate.arousal) - self.arousal)
                self.va_confidence += alpha * (float(estimate.va_confidence) - self.va_confidence)
        self.aus = _ewm(self.aus, estimate.au_probs, alpha)
        self.compound = _ewm(self.compound, estimate.compound_probs, alpha)
        self._hysteresis(stamp)
        smoothed = dataclasses.replace(
            estimate, expression_probs=self.probs.astype(np.float32), valence=float(self.valence),
            arousal=float(self.arousal), va_confidence=float(self.va_confidence),
            au_probs=self.aus.astype(np.float32), compound_probs=self.compound.astype(np.float32))
        if self.label_index is None:
            return smoothed, "", 0.0
        return smoothed, estimate.expression_labels[self.label_index], float(self.probs[self.label_index])

    def _set_label(self, idx: Optional[int]) -> None:
        if idx is not None and self.label_index is not None and idx != self.label_index:
            self.flips += 1
        self.label_index = idx

    def _hysteresis(self, stamp: float) -> None:
        if self.probs is None or len(self.probs) == 0:
            return
        top = int(np.argmax(self.probs))
        if self.label_index is None or self.label_index >= len(self.probs):
            self._set_label(top)
            self._candidate = None
            return
        if top == self.label_index or self.probs[top] < self.probs[self.label_index] + self.config.switch_margin:
            self._candidate = None
            return
        if self._candidate != top:
            self._candidate, self._candidate_since = top, stamp
        if stamp - self._candidate_since >= self.config.switch_min_seconds:
            self._set_label(top)
            self._candidate = None


def _ewm(state: Optional[np.ndarray], new: np.ndarray, alpha: float) -> np.ndarray:
    new = np.asarray(new, np.float64)
    if state is None or state.shape != new.shape:
        return new.copy()
    return state + alpha * (new - state)


class Aggregators:
    """The smoothing state of all tracks, keyed by face id; freed when a track ends."""

    def __init__(self, config: Optional[AggregationConfig] = None):
        self.config = config or AggregationConfig()
        self._states: dict[str, TrackAggregator] = {}

    def __len__(self) -> int:
        return len(self._states)

    def update(self, face_id: str, estimate: AffectEstimate, stamp: float) -> tuple[AffectEstimate, str, float]:
        state = self._states.get(face_id)
        if state is None:
            state = self._states[face_id] = TrackAggregator(self.config)
        return state.update(estimate, stamp)

    def last(self, face_id: str) -> Optional[TrackAggregator]:
        return self._states.get(face_id)

    def free(self, face_id: str) -> None:
        self._states.pop(face_id, None)

    def reset(self) -> None:
        self._states.clear()
