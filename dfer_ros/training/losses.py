"""Multi-task losses with ignored labels masked out (torch).

expression: cross-entropy with label smoothing and optional class weights, targets < 0 ignored.
VA: 1 - CCC per dimension (the benchmark metric itself, so the model is trained for it), NaN ignored.
AU: binary cross-entropy with per-AU positive weights (AUs are rare), targets < 0 ignored.
A task with no valid target in a batch contributes an exact 0 that keeps the graph connected.

Under DDP each process holds a share of the global batch and DDP averages the gradients. Each loss is
a ratio (sum over valid targets / their count or class weight), so scaling a process's loss by
``world_size * its denominator / the global denominator`` (``MultiTaskLoss.denominators`` summed over
the processes) makes the averaged gradient the gradient of the global batch's loss, as one process
would compute it. The CCC of VA is a batch statistic (like BatchNorm's): there each process's CCC is
weighted by its count of valid targets, which is close to, not equal to, the global batch's CCC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def expression_loss(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.1,
                    class_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    valid = target >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), target[valid], weight=class_weights,
                           label_smoothing=label_smoothing)


def ccc_torch(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """CCC of two 1-D tensors (population moments, as metrics.ccc)."""
    mp, mt = pred.mean(), target.mean()
    vp, vt = pred.var(unbiased=False), target.var(unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean()
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + eps)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, min_items: int = 2) -> torch.Tensor:
    """Mean over valence and arousal of 1 - CCC, on the entries whose target is finite."""
    pred, target = pred.float(), target.float()
    losses = []
    for k in range(pred.shape[1]):
        valid = torch.isfinite(target[:, k])
        if int(valid.sum()) >= min_items:
            losses.append(1.0 - ccc_torch(pred[valid, k], target[valid, k]))
    if not losses:
        return pred.sum() * 0.0
    return torch.stack(losses).mean()


def au_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    valid = target >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    per = F.binary_cross_entropy_with_logits(logits.float(), target.clamp(min=0).float(), reduction="none",
                                             pos_weight=pos_weight)
    return per[valid].mean()


def au_pos_weights(au_targets: np.ndarray, max_weight: float = 10.0) -> np.ndarray:
    """negatives/positives per AU over the training set (clipped), the usual remedy for rare AUs."""
    t = np.asarray(au_targets, np.float64)
    if t.size == 0:
        return np.ones(t.shape[-1] if t.ndim == 2 else 0, np.float32)
    pos = (t == 1).sum(axis=0)
    neg = (t == 0).sum(axis=0)
    w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return np.clip(w, 1.0, max_weight).astype(np.float32)


@dataclass
class LossWeights:
    expression: float = 1.0
    va: float = 1.0
    au: float = 1.0
    text: float = 0.0  # optional text-prompt supervision of the expression head


@dataclass
class MultiTaskLoss:
    """Weighted sum of the task losses for whatever targets a batch carries."""

    weights: LossWeights = field(default_factory=LossWeights)
    label_smoothing: float = 0.1
    class_weights: Optional[torch.Tensor] = None
    au_pos_weight: Optional[torch.Tensor] = None

    def denominators(self, batch: dict) -> dict[str, torch.Tensor]:
        """What each task's mean divides by in this batch (float64 scalars; see the module docstring)."""
        y = batch["expression"]
        valid = y >= 0
        if self.class_weights is not None:
            expr = self.class_weights.double()[y[valid]].sum()
        else:
            expr = valid.sum().double()
        va = torch.isfinite(batch["va"]).sum().double() / max(1, batch["va"].shape[-1])
        au = (batch["aus"] >= 0).sum().double()
        return {"expression": expr, "va": va, "au": au, "text": valid.sum().double()}

    def __call__(self, out: dict, batch: dict, scale: Optional[dict[str, float]] = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts; ``scale`` multiplies each part (the DDP weighting, see above)."""
        parts: dict[str, torch.Tensor] = {}
        if self.weights.expression and "expression" in batch and "expression_logits" in out:
            parts["expression"] = expression_loss(out["expression_logits"], batch["expression"],
                                                  self.label_smoothing, self.class_weights)
        if self.weights.va and "va" in batch and "valence_arousal" in out:
            parts["va"] = ccc_loss(out["valence_arousal"], batch["va"])
        if self.weights.au and "aus" in batch and "au_logits" in out and batch["aus"].shape[-1]:
            parts["au"] = au_loss(out["au_logits"], batch["aus"], self.au_pos_weight)
        if not parts:
            raise ValueError("the batch carries no target the model predicts")
        if scale is not None:
            parts = {k: v * scale[k] for k, v in parts.items()}
        total = sum(getattr(self.weights, k) * v for k, v in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}
