"""Valence-arousal from expression probabilities through Russell's circumplex of affect.

No valence-arousal model ships in any reachable package, so the embedded model derives VA from its seven
FER2013 class probabilities. Each class gets a point of the circumplex; the estimate is the
probability-weighted mean of those points, so an uncertain face is pulled toward the neutral centre.

Source: J. A. Russell (1980), "A circumplex model of affect", J. Personality and Social Psychology 39(6),
1161-1178: the angular positions (degrees, counter-clockwise from the pleasure axis; 90 = high arousal)
of 28 affect words on the unit circle from the direct circular scaling. Which word stands for which class:

    class     Russell word      angle    valence  arousal
    happy     happy               7.8     0.99     0.14
    surprise  astonished         69.8     0.35     0.94
    angry     angry              99.1    -0.16     0.99
    fear      afraid            116.7    -0.45     0.89
    disgust   (not in the 28)   130.0    -0.64     0.77   between annoyed (123.0) and distressed (137.6)
    sad       sad               207.5    -0.89    -0.46
    neutral   (none)            origin    0.00     0.00

Approximations: disgust is not among Russell's 28 words; it is placed between "annoyed" and "distressed",
the words nearest to it in later circumplex studies (negative, moderately aroused). Neutral is not an
affect word; it is the centre (no valence, no arousal). All words lie at radius 1 on Russell's circle, so a
fully confident prediction has |VA| = 1; the output is clipped to [-1, 1].

Confidence is 1 - H(p) / log(C): 1 for a one-hot prediction, 0 for a uniform one.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# degrees on Russell's (1980) circle; None = the centre
CIRCUMPLEX_ANGLES_DEG: dict[str, float | None] = {
    "angry": 99.1,
    "disgust": 130.0,
    "fear": 116.7,
    "happy": 7.8,
    "sad": 207.5,
    "surprise": 69.8,
    "neutral": None,
}


def circumplex_points(labels: Sequence[str]) -> np.ndarray:
    """(C, 2) valence, arousal of each label (KeyError naming the label when it has no coordinates)."""
    points = np.zeros((len(labels), 2), np.float64)
    for i, label in enumerate(labels):
        if label not in CIRCUMPLEX_ANGLES_DEG:
            raise KeyError(f"no circumplex coordinates for expression {label!r}; "
                           f"known: {sorted(CIRCUMPLEX_ANGLES_DEG)}")
        angle = CIRCUMPLEX_ANGLES_DEG[label]
        if angle is not None:
            points[i] = (math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    return points


def entropy_confidence(probs: np.ndarray) -> np.ndarray:
    """1 - normalised entropy along the last axis: (..., C) -> (...), in [0, 1]."""
    p = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-12)
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    return np.clip(1.0 - entropy / math.log(p.shape[-1]), 0.0, 1.0)


class Circumplex:
    """Maps (N, C) class probabilities to (N,) valence, (N,) arousal and (N,) confidence."""

    def __init__(self, labels: Sequence[str]):
        self.labels = tuple(labels)
        self.points = circumplex_points(self.labels)

    def __call__(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs = np.atleast_2d(np.asarray(probs, np.float64))
        if probs.shape[-1] != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} probabilities per row, got shape {probs.shape}")
        weights = probs / np.maximum(probs.sum(-1, keepdims=True), 1e-12)
        va = np.clip(weights @ self.points, -1.0, 1.0)
        return (va[:, 0].astype(np.float32), va[:, 1].astype(np.float32),
                entropy_confidence(probs).astype(np.float32))
