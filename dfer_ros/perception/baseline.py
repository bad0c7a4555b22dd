"""Per-person expression baselines: expression relative to a person's own resting face (opt-in, ``baseline.*``).

Why: some people's resting face reads sad or angry to any expression model. A behaviour that reacts to "sad"
then reacts to that person all day. Keeping, per person, a running baseline of what the model reads on their
face while they are calm lets the node also publish the expression *relative* to that person's own neutral.

Method (stated once, here):
  * key: the person id (re-identification), else the face id: a baseline outlives a track only with person ids;
  * calm: a face whose smoothed arousal is at most ``calm_max_arousal`` (low-arousal faces: resting, neutral, or
    a resting face that reads mildly sad); faces with no arousal estimate count as calm;
  * baseline: an exponential moving average, in stamp time with half-life ``half_life_seconds``, of the
    smoothed log-probabilities over calm frames only;
  * relative expression: softmax(log p - baseline + log reference), where ``reference`` reads the resting face
    as ``neutral_reference`` neutral and the rest spread evenly. So the person's own resting face reads as
    neutral, and what changes from it (a smile, a frown) moves probability to that class as it would from
    a neutral reference. Published once ``min_calm_seconds`` of calm frames are in; empty before.
  * privacy: a forgotten person's baseline goes with their descriptors; baselines live in memory only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

NEUTRAL = "neutral"


@dataclass
class _Baseline:
    log_probs: np.ndarray
    calm_seconds: float
    last_stamp: float
    labels: tuple[str, ...]


class PersonBaselines:
    """Running per-person baselines of expression log-probabilities (see the module docstring)."""

    def __init__(self, config, max_entries: int = 1000):
        self.config = config
        self.max_entries = int(max_entries)
        self._baselines: dict[str, _Baseline] = {}

    def __len__(self) -> int:
        return len(self._baselines)

    def update(self, key: str, stamp: float, labels: Sequence[str], probs: np.ndarray, arousal: float) -> None:
        """Feed one new smoothed estimate of a face; only calm ones move the baseline."""
        if not key or NEUTRAL not in labels:
            return
        if math.isfinite(arousal) and arousal > self.config.calm_max_arousal:
            return
        logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-6, 1.0))
        entry = self._baselines.get(key)
        if entry is None or entry.labels != tuple(labels):
            if len(self._baselines) >= self.max_entries:
                del self._baselines[min(self._baselines, key=lambda k: self._baselines[k].last_stamp)]
            self._baselines[key] = _Baseline(logp, 0.0, float(stamp), tuple(labels))
            return
        dt = max(float(stamp) - entry.last_stamp, 0.0)
        dt = min(dt, 1.0)  # a gap (the person away) is not calm time
        weight = 1.0 - 0.5 ** (dt / self.config.half_life_seconds) if dt > 0 else 0.0
        entry.log_probs = (1.0 - weight) * entry.log_probs + weight * logp
        entry.calm_seconds += dt
        entry.last_stamp = float(stamp)

    def relative(self, key: str, labels: Sequence[str], probs: np.ndarray) -> Optional[np.ndarray]:
        """Probabilities relative to the person's baseline, or None while it is not ready."""
        entry = self._baselines.get(key)
        if entry is None or entry.labels != tuple(labels) or entry.calm_seconds < self.config.min_calm_seconds:
            return None
        reference = self.reference(labels)
        z = np.log(np.clip(np.asarray(probs, np.float64), 1e-6, 1.0)) - entry.log_probs + np.log(reference)
        z -= z.max()
        e = np.exp(z)
        return (e / e.sum()).astype(np.float32)

    def reference(self, labels: Sequence[str]) -> np.ndarray:
        n = len(labels)
        ref = np.full(n, (1.0 - self.config.neutral_reference) / max(n - 1, 1))
        ref[list(labels).index(NEUTRAL)] = self.config.neutral_reference
        return ref

    def adopt(self, face_id: str, person_id: str) -> None:
        """A face's person id became known: its face-keyed baseline becomes the person's (unless they have one)."""
        entry = self._baselines.pop(face_id, None)
        if entry is not None and person_id not in self._baselines:
            self._baselines[person_id] = entry

    def forget(self, key: str) -> None:
        self._baselines.pop(key, None)

    def forget_all(self) -> None:
        self._baselines.clear()
