"""Compound expressions (the 7 C-EXPR-DB classes) from basic-class probabilities by pairwise
aggregation (after Team RAS, ABAW-8). Pure numpy, used at run time.

Each compound class k is a pair of basic classes (a_k, b_k). With p the basic-class probabilities
(any label set that contains the needed classes, matched by name: "happy"/"Happiness", ...):

    method "sum":      s_k = p[a_k] + p[b_k]
    method "product":  s_k = p[a_k] * p[b_k]
    P(k) = s_k / sum_j s_j

"sum" ranks a compound high when either part is strong, "product" only when both are.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dfer_ros.clip_adapter.text_prompts import canonical_class

COMPOUND_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("fearfully surprised", "fear", "surprise"),
    ("happily surprised", "happiness", "surprise"),
    ("sadly surprised", "sadness", "surprise"),
    ("disgustedly surprised", "disgust", "surprise"),
    ("angrily surprised", "anger", "surprise"),
    ("sadly fearful", "sadness", "fear"),
    ("sadly angry", "sadness", "anger"),
)
COMPOUND_LABELS: tuple[str, ...] = tuple(name for name, _, _ in COMPOUND_CLASSES)


class CompoundAggregator:
    """Maps (..., C) basic probabilities in ``basic_labels`` order to (..., 7) compound probabilities."""

    def __init__(self, basic_labels: Sequence[str], method: str = "sum"):
        if method not in ("sum", "product"):
            raise ValueError(f"compound method must be 'sum' or 'product', not {method!r}")
        index = {canonical_class(label): i for i, label in enumerate(basic_labels)}
        needed = sorted({c for _, a, b in COMPOUND_CLASSES for c in (a, b)} - set(index))
        if needed:
            raise ValueError(f"label set {list(basic_labels)} lacks {needed} needed for compound expressions")
        self.method = method
        self.labels = COMPOUND_LABELS
        self._a = np.array([index[a] for _, a, _ in COMPOUND_CLASSES])
        self._b = np.array([index[b] for _, _, b in COMPOUND_CLASSES])

    @staticmethod
    def supports(basic_labels: Sequence[str]) -> bool:
        have = {canonical_class(label) for label in basic_labels}
        return all(a in have and b in have for _, a, b in COMPOUND_CLASSES)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, np.float32)
        pa, pb = probs[..., self._a], probs[..., self._b]
        scores = pa + pb if self.method == "sum" else pa * pb
        total = scores.sum(axis=-1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / scores.shape[-1])
        return np.where(total > 0, scores / np.maximum(total, 1e-12), uniform).astype(np.float32)
