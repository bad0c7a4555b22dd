"""The torch Dataset that turns dataset records into model-ready clips and targets.

Targets are mapped once from the dataset's class order / AU names into the MODEL's
(``ClipAdapterConfig.expression_labels`` / ``au_names``), so any reader can feed any model whose
classes cover it. Every random choice of an item (window start, augmentation) comes from a numpy
Generator seeded with (seed, epoch, index): the same item looks the same in any worker process
and after a resume, which is what makes resumed training reproduce an uninterrupted run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from dfer_ros.training.augment import AugmentConfig, augment_clip
from dfer_ros.datasets.common import ClipRecord, DatasetError, DatasetSplit, label_mapping, labelled_rows
from dfer_ros.training.sampling import ClipItem, clip_indices, window_ends, window_indices


def read_image_rgb(path: Path, size: int) -> np.ndarray:
    """One frame file as (size, size, 3) uint8 RGB; unreadable files are a DatasetError naming them."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(path, "image cannot be read")
    if img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_video_frames(path: Path, indices: np.ndarray, size: int) -> dict[int, np.ndarray]:
    wanted = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(str(path))
    try:
        i, last = 0, max(wanted)
        while i <= last:
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                if frame.shape[:2] != (size, size):
                    frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
                out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    if not out:
        raise DatasetError(path, "no frame could be decoded")
    return out


def load_clip(record: ClipRecord, indices: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, size, size, 3) uint8 RGB frames and the updated mask (frames missing on disk are masked)."""
    frames = np.zeros((len(indices), size, size, 3), np.uint8)
    mask = mask.copy()
    if record.video is not None:
        decoded = read_video_frames(record.video, indices, size)
        for k, i in enumerate(indices):
            if int(i) in decoded:
                frames[k] = decoded[int(i)]
            else:
                mask[k] = False  # the container reported more frames than it decodes
    else:
        cache: dict[int, np.ndarray] = {}
        for k, i in enumerate(indices):
            i = int(i)
            if record.frame_present is not None and not record.frame_present[i]:
                mask[k] = False
                continue
            if i not in cache:
                cache[i] = read_image_rgb(record.frames[i], size)
            frames[k] = cache[i]
    if not mask.any():
        mask[len(mask) - 1] = True  # keep one position so the head has something to pool
    return frames, mask


class ClipDataset:
    """Items are clips (clip-level data) or causal windows ending at labelled frames (per-frame data).

    __getitem__ returns numpy arrays: frames (T,S,S,3) uint8, mask (T,), expression (), va (2,),
    aus (A,); ``collate`` stacks them and converts the frames with ``to_pixels``.
    """

    def __init__(self, split: DatasetSplit, model_labels: Sequence[str], model_aus: Sequence[str], image_size: int,
                 frames: int, stride: int = 1, sampling: str = "random", augment: Optional[AugmentConfig] = None,
                 seed: int = 0, window_step: int = 8, max_items: Optional[int] = None):
        self.split = split
        self.size = int(image_size)
        self.t = int(frames)
        self.stride = int(stride)
        self.sampling = sampling
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.expr_map = label_mapping(split.expression_labels, model_labels) if split.expression_labels else None
        ds_aus = {n.upper(): i for i, n in enumerate(split.au_names)}
        self.au_src = np.array([ds_aus.get(n.upper(), -1) for n in model_aus], np.int64)
        self.num_aus = len(model_aus)
        self.has_expression = self.expr_map is not None
        self.has_va = split.has_va
        self.has_aus = bool((self.au_src >= 0).any())
        items: list[ClipItem] = []
        for r, rec in enumerate(split.records):
            if rec.per_frame:
                labelled = labelled_rows(rec.num_frames, rec.frame_expression, rec.frame_va, rec.frame_aus)
                items.extend(ClipItem(r, int(e)) for e in window_ends(labelled, window_step))
            else:
                items.append(ClipItem(r))
        if max_items is not None and len(items) > max_items:
            keep = np.random.default_rng([self.seed, 0xC11]).choice(len(items), size=max_items, replace=False)
            items = [items[i] for i in sorted(keep)]
        if not items:
            raise DatasetError(split.source or split.name, "no labelled clip or frame to train or evaluate on")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def targets(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        item = self.items[index]
        rec = self.split.records[item.record]
        if item.end >= 0:
            e = item.end
            expr = int(rec.frame_expression[e]) if rec.frame_expression is not None else -1
            va = rec.frame_va[e] if rec.frame_va is not None else np.full(2, np.nan, np.float32)
            src_aus = rec.frame_aus[e] if rec.frame_aus is not None else None
        else:
            expr = rec.expression
            va = np.array([rec.valence, rec.arousal], np.float32)
            src_aus = rec.aus
        if expr >= 0 and self.expr_map is not None:
            expr = int(self.expr_map[expr])
        aus = np.full(self.num_aus, -1, np.float32)
        if src_aus is not None:
            have = self.au_src >= 0
            aus[have] = np.asarray(src_aus, np.float32)[self.au_src[have]]
        return expr, np.asarray(va, np.float32), aus

    def expression_targets(self) -> np.ndarray:
        return np.array([self.targets(i)[0] for i in range(len(self))], np.int64)

    def au_targets(self) -> np.ndarray:
        return np.stack([self.targets(i)[2] for i in range(len(self))]) if len(self) else np.zeros((0, self.num_aus))

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        rec = self.split.records[item.record]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if item.end >= 0:
            idx, mask = window_indices(item.end, self.t, self.stride)
        else:
            idx, mask = clip_indices(rec.num_frames, self.t, self.stride, self.sampling, rng)
        frames, mask = load_clip(rec, idx, mask, self.size)
        if self.augment is not None and self.augment.enabled:
            frames = augment_clip(frames, self.augment, rng)
        expr, va, aus = self.targets(index)
        return {"frames": frames, "mask": mask, "expression": np.int64(expr), "va": va, "aus": aus, "index": index}


class Collate:
    """Collate function: stacks items, converting frames with ``to_pixels`` ((N,S,S,3) uint8 -> (N,3,S,S)).
    A module-level class, so it pickles into DataLoader worker processes under any start method."""

    def __init__(self, to_pixels: Callable[[np.ndarray], "object"]):
        self.to_pixels = to_pixels

    def __call__(self, items: list[dict]) -> dict:
        import torch

        frames = np.stack([it["frames"] for it in items])  # (B, T, S, S, 3)
        b, t = frames.shape[:2]
        pixels = self.to_pixels(frames.reshape((b * t,) + frames.shape[2:]))
        pixels = pixels.reshape((b, t) + tuple(pixels.shape[1:]))
        return {
            "pixels": pixels,
            "mask": torch.from_numpy(np.stack([it["mask"] for it in items])),
            "expression": torch.from_numpy(np.array([it["expression"] for it in items], np.int64)),
            "va": torch.from_numpy(np.stack([it["va"] for it in items])),
            "aus": torch.from_numpy(np.stack([it["aus"] for it in items])),
            "index": torch.tensor([it["index"] for it in items]),
        }


def make_collate(to_pixels: Callable[[np.ndarray], "object"]) -> Collate:
    return Collate(to_pixels)
