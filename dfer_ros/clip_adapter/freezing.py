"""The one place that decides what trains: adapters, LoRA matrices and the temporal head train; the
CLIP tower (and, unless configured, its projection) stays frozen."""
from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger(__name__)

TRAINABLE_PREFIXES = ("adapters.", "head.")


def is_trainable_name(name: str, train_projection: bool = False) -> bool:
    if name.startswith(TRAINABLE_PREFIXES) or "lora_" in name:
        return True
    return train_projection and name.startswith("vision.visual_projection.")


def freeze_for_adaptation(model: nn.Module, train_projection: bool = False) -> tuple[int, int]:
    """Freeze everything but the adapted parts; returns (trainable, total) parameter counts and logs them."""
    trainable = total = 0
    for name, param in model.named_parameters():
        param.requires_grad_(is_trainable_name(name, train_projection))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    log.info("trainable parameters: %d of %d (%.2f %%)", trainable, total, 100.0 * trainable / max(total, 1))
    return trainable, total
