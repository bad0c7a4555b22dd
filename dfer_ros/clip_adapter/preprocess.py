"""Face crops to CLIP pixel values. The numpy half (``normalize_crops``) is what the torch-free runtime
uses; ``to_pixel_values`` is the torch version for training and the torch backend (torch imported lazily)."""
from __future__ import annotations

import numpy as np

from dfer_ros.clip_adapter.config import CLIP_MEAN, CLIP_STD

_MEAN = np.asarray(CLIP_MEAN, np.float32)
_STD = np.asarray(CLIP_STD, np.float32)


def _check_crops(crops: np.ndarray, size: int | None) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be (N, S, S, 3) uint8 RGB, got shape {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"crops must be uint8, got {crops.dtype}")
    if size is not None and crops.shape[1:3] != (size, size):
        import cv2  # resize only when the aligner's crop size differs from the model's

        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]) if len(crops) \
            else np.zeros((0, size, size, 3), np.uint8)
    return crops


def normalize_crops(crops: np.ndarray, size: int | None = None) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 normalized with CLIP's mean and std."""
    crops = _check_crops(crops, size)
    x = crops.astype(np.float32) / 255.0
    x = (x - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_pixel_values(crops: np.ndarray, size: int | None = None):
    """(N, S, S, 3) uint8 RGB -> torch.Tensor (N, 3, S, S) float32, CLIP-normalized."""
    import torch

    return torch.from_numpy(normalize_crops(crops, size))
