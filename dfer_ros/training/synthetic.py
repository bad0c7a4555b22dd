"""Tiny synthetic datasets written in the public layouts, for tests, smoke runs and benchmarks.

No labelled face data can be redistributed, so the toolchain is checked on clips whose labels a
small model CAN learn: each expression class has its own background colour and a bright square
moving along a class-specific path; valence/arousal are smooth functions of the class and AUs are
the bits of the class id. Everything is drawn from a seeded Generator (same seed, same files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from dfer_ros.vocabulary import ABAW_AU12, ABAW_EXPR8, BASIC7, MAFW11

# Far apart in RGB (the first seven are the 7-class benchmarks' classes): a small frozen random tower
# plus adapters separates them within a few epochs.
_PALETTE = np.array([[220, 40, 40], [40, 200, 40], [40, 60, 220], [230, 230, 50], [200, 40, 200], [40, 200, 200],
                     [250, 250, 250], [20, 20, 20], [240, 140, 20], [120, 120, 120], [140, 70, 20]], np.float32)


def class_frame(cls: int, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Frame k of a clip of class ``cls``: (size, size, 3) uint8 RGB."""
    base = _PALETTE[cls % len(_PALETTE)]
    img = np.clip(base + rng.normal(0, 18, (size, size, 3)), 0, 255)
    s = max(2, size // 5)
    angle = 2 * np.pi * (k / 8.0) * (1 if cls % 2 else -1) + cls
    cy = int(size / 2 + (size / 4) * np.sin(angle)) - s // 2
    cx = int(size / 2 + (size / 4) * np.cos(angle)) - s // 2
    img[max(cy, 0):cy + s, max(cx, 0):cx + s] = 255 - base
    return img.astype(np.uint8)


def class_va(cls: int, num_classes: int) -> tuple[float, float]:
    x = cls / max(1, num_classes - 1)
    return float(np.round(0.9 * (2 * x - 1), 3)), float(np.round(0.8 * np.cos(np.pi * x), 3))


def class_aus(cls: int, num_aus: int) -> list[int]:
    return [(cls >> (j % 4)) & 1 for j in range(num_aus)]


def _write_frames(folder: Path, cls: int, n: int, size: int, rng, suffix: str = ".jpg", start: int = 1,
                  skip: Sequence[int] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        if k in skip:
            continue
        frame = class_frame(cls, k, size, rng)
        cv2.imwrite(str(folder / f"{k + start:05d}{suffix}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _labels(n_clips: int, num_classes: int, rng) -> np.ndarray:
    return np.array([i % num_classes for i in rng.permutation(n_clips)])


def write_dfew(root, clips_per_class: int = 4, frames: int = 10, size: int = 32, seed: int = 0,
               num_classes: int = 7) -> Path:
    """DFEW layout, 5 folds: clip i is in the test set of fold (i % 5) + 1."""
    root, rng = Path(root), np.random.default_rng(seed)
    labels = _labels(clips_per_class * num_classes, num_classes, rng)
    for i, c in enumerate(labels):
        _write_frames(root / "Clip" / "clip_224x224" / f"{i + 1:05d}", int(c), frames + int(rng.integers(0, 5)), size,
                      rng)
    for fold in range(1, 6):
        for split in ("train", "test"):
            folder = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
            folder.mkdir(parents=True, exist_ok=True)
            rows = [f"{i + 1},{int(c) + 1}" for i, c in enumerate(labels) if (i % 5 == fold - 1) == (split == "test")]
            (folder / f"set_{fold}.csv").write_text("video_name,label\n" + "\n".join(rows) + "\n")
    return root


def write_ferv39k(root, clips_per_class: int = 4, frames: int = 10, size: int = 32, seed: int = 0) -> Path:
    from dfer_ros.datasets.ferv39k import FERV39K_CLASSES

    root, rng = Path(root), np.random.default_rng(seed)
    labels = _labels(clips_per_class * len(FERV39K_CLASSES), len(FERV39K_CLASSES), rng)
    lines = {"train": [], "test": []}
    for i, c in enumerate(labels):
        rel = f"{['Action', 'Daily'][i % 2]}/{['Crime', 'Home'][i % 2]}/{i:04d}"
        _write_frames(root / "2_ClipsforFaceCrop" / rel, int(c), frames, size, rng)
        lines["test" if i % 4 == 0 else "train"].append(f"{rel} {int(c)}")
    folder = root / "4_setups" / "All_scenes"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (folder / f"{split}_All.csv").write_text("\n".join(rows) + "\n")
    return root


def write_mafw(root, clips_per_class: int = 2, frames: int = 10, size: int = 32, seed: int = 0) -> Path:
    root, rng = Path(root), np.random.default_rng(seed)
    labels = _labels(clips_per_class * len(MAFW11), len(MAFW11), rng)
    for i, c in enumerate(labels):
        _write_frames(root / "data" / "frames" / f"{i + 1:05d}", int(c), frames, size, rng, suffix=".png")
    for fold in range(1, 6):
        folder = root / "Train & Test Set" / "single" / "no_caption" / f"set_{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            rows = [f"{i + 1:05d}.mp4 {MAFW11[int(c)]}" for i, c in enumerate(labels)
                    if (i % 5 == fold - 1) == (split == "test")]
            (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def write_affwild2(root, videos: int = 4, frames: int = 40, size: int = 32, seed: int = 0,
                   segment: int = 10, ignore_every: int = 7) -> Path:
    """ABAW layout: labels change every ``segment`` frames; every ``ignore_every``-th frame is -1 / -5."""
    root, rng = Path(root), np.random.default_rng(seed)
    for split, prefix in (("Train_Set", "train"), ("Validation_Set", "val")):
        for v in range(videos if split == "Train_Set" else max(1, videos // 2)):
            name = f"{prefix}{v:02d}-{640 + v}x360" + ("_left" if v % 3 == 2 else "")
            classes = rng.integers(0, len(ABAW_EXPR8), size=(frames + segment - 1) // segment).repeat(segment)[:frames]
            folder = root / "cropped_aligned" / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, c in enumerate(classes):
                frame = class_frame(int(c), k, size, rng)
                cv2.imwrite(str(folder / f"{k + 1:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            ann = root / "annotations"
            expr, va, au = ["Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"], ["valence,arousal"], \
                [",".join(ABAW_AU12)]
            for k, c in enumerate(classes):
                ign = ignore_every and k % ignore_every == ignore_every - 1
                expr.append("-1" if ign else str(int(c)))
                vv, aa = class_va(int(c), len(ABAW_EXPR8))
                va.append("-5,-5" if ign else f"{vv},{aa}")
                au.append(",".join(["-1"] * len(ABAW_AU12)) if ign else
                          ",".join(map(str, class_aus(int(c), len(ABAW_AU12)))))
            for task, rows in (("EXPR_Recognition_Challenge", expr), ("VA_Estimation_Challenge", va),
                               ("AU_Detection_Challenge", au)):
                (ann / task / split).mkdir(parents=True, exist_ok=True)
                (ann / task / split / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return root


def write_manifest(root, clips_per_class: int = 4, frames: int = 10, size: int = 32, seed: int = 0,
                   labels: Optional[Sequence[str]] = None, val_every: int = 4) -> Path:
    """manifest.csv with frame folders, expression names, valence/arousal, 12 AU columns and a split column."""
    labels = list(labels or BASIC7)
    root, rng = Path(root), np.random.default_rng(seed)
    classes = _labels(clips_per_class * len(labels), len(labels), rng)
    rows = ["path,split,expression,valence,arousal," + ",".join(ABAW_AU12)]
    for i, c in enumerate(classes):
        rel = f"clips/{i:04d}"
        _write_frames(root / rel, int(c), frames, size, rng, suffix=".png")
        v, a = class_va(int(c), len(labels))
        aus = ",".join(map(str, class_aus(int(c), len(ABAW_AU12))))
        rows.append(f"{rel},{'val' if i % val_every == 0 else 'train'},{labels[int(c)]},{v},{a},{aus}")
    path = root / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


WRITERS = {"dfew": write_dfew, "ferv39k": write_ferv39k, "mafw": write_mafw, "affwild2": write_affwild2,
           "manifest": write_manifest}


# what the command writes per layout beyond the writers' defaults: a DFEW large enough for
# models/train_tiny_synthetic.yaml to learn from
LAYOUT_OPTIONS = {"dfew": {"clips_per_class": 6, "frames": 6}}


def write(layout: str, root, size: int = 32, seed: int = 1) -> Path:
    """A dataset in ``layout`` (a key of ``WRITERS``) at ``root``, as ``dfer synthetic-data``
    writes it; returns what the writer returns (the dataset root or manifest)."""
    if layout not in WRITERS:
        raise ValueError(f"unknown layout {layout!r}: one of {', '.join(sorted(WRITERS))}")
    return WRITERS[layout](root, size=size, seed=seed, **LAYOUT_OPTIONS.get(layout, {}))


if __name__ == "__main__":  # the command line: dfer_ros/cli/synthetic.py
    from dfer_ros.commands import exec_cli

    exec_cli("synthetic", "dfer synthetic-data")
