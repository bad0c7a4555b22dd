"""Face-suitable clip augmentation in numpy/OpenCV (no torchvision).

Aligned crops put eyes and mouth at fixed places, which the encoder relies on; so only changes
that keep that geometry roughly intact are used: horizontal flip (faces are near-symmetric and the
ABAW AUs are bilateral), a small random crop/scale, and colour jitter. No rotations. One set of
parameters is drawn per clip and applied to all its frames, so augmentation never adds motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    enabled: bool = True
    hflip: float = 0.5  # probability
    min_scale: float = 0.85  # side of the random crop relative to the frame
    max_shift: float = 0.05  # extra centre shift, fraction of the side
    brightness: float = 0.2  # multiplicative, 1 +- this
    contrast: float = 0.2
    saturation: float = 0.2


def augment_clip(frames: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """frames (T, S, S, 3) uint8 RGB -> augmented copy with the same shape."""
    if not cfg.enabled:
        return frames
    t, h, w, _ = frames.shape
    out = frames
    if rng.random() < cfg.hflip:
        out = out[:, :, ::-1]
    scale = rng.uniform(cfg.min_scale, 1.0)
    ch, cw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    cy = (h - ch) / 2 + rng.uniform(-cfg.max_shift, cfg.max_shift) * h
    cx = (w - cw) / 2 + rng.uniform(-cfg.max_shift, cfg.max_shift) * w
    y0 = int(np.clip(round(cy), 0, h - ch))
    x0 = int(np.clip(round(cx), 0, w - cw))
    b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    result = np.empty_like(frames)
    for i in range(t):
        crop = np.ascontiguousarray(out[i, y0:y0 + ch, x0:x0 + cw])
        if (ch, cw) != (h, w):
            crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        img = crop.astype(np.float32) * b
        mean = img.mean()
        img = (img - mean) * c + mean
        grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = (img - grey[..., None]) * s + grey[..., None]
        result[i] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return result
