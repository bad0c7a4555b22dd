"""Face verification on labelled stills: genuine vs impostor distances, ROC, TAR at fixed FAR, a plot.

Why: re-identification joins a returning face to a person when the distance of their descriptors is below a
threshold; that threshold and the descriptor's quality are chosen from these numbers. Each image goes through
the pipeline's detector (largest face) and 5-point alignment at the descriptor's ``CropSpec``, so what is
measured is what the pipeline feeds the gallery.

A set is ``ROOT/<condition>/<person>.jpg`` (the London set: ``neutral/001.jpg`` and ``happy/001.jpg`` are person
001): pairs of images of the same person under different conditions are genuine, every pair of images of
different people is an impostor pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from dfer_ros.perception.alignment import align_faces
from dfer_ros.perception.model_interface import CropSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class VerificationResult:
    genuine: np.ndarray  # distances of same-person pairs
    impostor: np.ndarray  # distances of different-person pairs
    images: int
    faces_found: int

    def far_frr(self, threshold: float) -> tuple[float, float]:
        """(impostor share accepted, genuine share rejected) when 'same person' means distance < threshold."""
        return float(np.mean(self.impostor < threshold)), float(np.mean(self.genuine >= threshold))

    def threshold_at_far(self, far: float) -> float:
        """The largest threshold whose FAR is at most ``far`` (distance < threshold accepts)."""
        ordered = np.sort(self.impostor)
        allowed = int(np.floor(far * len(ordered)))  # impostor pairs that may be accepted
        return float(ordered[min(allowed, len(ordered) - 1)])

    def tar_at_far(self, far: float) -> tuple[float, float]:
        """(TAR, threshold) at the given FAR."""
        threshold = self.threshold_at_far(far)
        return float(np.mean(self.genuine < threshold)), threshold

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """(FAR, TAR) over all thresholds."""
        thresholds = np.unique(np.concatenate([self.genuine, self.impostor, [np.inf]]))
        far = np.searchsorted(np.sort(self.impostor), thresholds, side="left") / len(self.impostor)
        tar = np.searchsorted(np.sort(self.genuine), thresholds, side="left") / len(self.genuine)
        return far, tar

    def text(self, fars: Sequence[float] = (0.01, 0.001)) -> str:
        lines = [f"{self.images} images, faces found on {self.faces_found}; {len(self.genuine)} genuine pairs, "
                 f"{len(self.impostor)} impostor pairs",
                 f"genuine distance: median {np.median(self.genuine):.3f}, max {self.genuine.max():.3f}; "
                 f"impostor distance: median {np.median(self.impostor):.3f}, min {self.impostor.min():.3f}"]
        for far in fars:
            tar, threshold = self.tar_at_far(far)
            lines.append(f"TAR at FAR {100 * far:g} %: {tar:.3f} (distance threshold {threshold:.3f})")
        return "\n".join(lines)


def labelled_identities(root: Path) -> list[tuple[Path, str]]:
    """(image, person) for every image in ``root/<condition>/``; the person is the file's stem."""
    root = Path(root)
    items = [(p, p.stem) for folder in sorted(root.iterdir()) if folder.is_dir()
             for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise FileNotFoundError(f"no images under {root} (expected {root}/<condition>/<person>.jpg)")
    return items


def describe_images(paths: Sequence[Path], detector, describe: Callable[[np.ndarray], np.ndarray],
                    crop: CropSpec, progress: bool = False) -> list[Optional[np.ndarray]]:
    """One descriptor per image (its largest face), None where no face is found."""
    import cv2

    out: list[Optional[np.ndarray]] = []
    iterator = paths
    if progress:
        from tqdm import tqdm

        iterator = tqdm(paths, desc="descriptors", unit="image")
    for path in iterator:
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        faces = detector.detect(image)
        if not faces:
            out.append(None)
            continue
        out.append(describe(align_faces(image, faces[:1], crop))[0])
    return out


def verification(identities: Sequence[str], descriptors: Sequence[Optional[np.ndarray]]) -> VerificationResult:
    """All pairs of images with a face: genuine (same identity) and impostor distances (Euclidean)."""
    keep = [i for i, d in enumerate(descriptors) if d is not None]
    if len(keep) < 2:
        raise ValueError("fewer than two images with a face: nothing to compare")
    ids = np.array([identities[i] for i in keep])
    vectors = np.stack([descriptors[i] for i in keep]).astype(np.float64)
    squared = (vectors ** 2).sum(1)
    dist = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T, 0.0))
    upper = np.triu_indices(len(keep), 1)
    same = (ids[:, None] == ids[None, :])[upper]
    values = dist[upper]
    if not same.any() or same.all():
        raise ValueError("need both same-person and different-person pairs")
    return VerificationResult(values[same], values[~same], len(descriptors), len(keep))


def roc_plot(result: VerificationResult, path: Path, title: str, threshold: Optional[float] = None) -> Path:
    """ROC (log FAR) and the two distance histograms side by side, with the chosen threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    far, tar = result.roc()
    fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.2))
    floor = 0.5 / len(result.impostor)
    ax_roc.plot(np.maximum(far, floor), tar, lw=2)
    for mark in (0.01, 0.001):
        t, _ = result.tar_at_far(mark)
        ax_roc.plot([mark], [t], "o", label=f"FAR {100 * mark:g} %: TAR {t:.3f}")
    ax_roc.set_xscale("log")
    ax_roc.set_xlabel("false accept rate (impostor pairs accepted)")
    ax_roc.set_ylabel("true accept rate (genuine pairs accepted)")
    ax_roc.set_ylim(0.5, 1.01)
    ax_roc.grid(alpha=0.3)
    ax_roc.legend(loc="lower right")
    bins = np.linspace(0, max(result.impostor.max(), result.genuine.max()) * 1.02, 80)
    ax_hist.hist(result.impostor, bins, density=True, alpha=0.6, label=f"impostor ({len(result.impostor)})")
    ax_hist.hist(result.genuine, bins, density=True, alpha=0.6, label=f"genuine ({len(result.genuine)})")
    if threshold is not None:
        ax_hist.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.2f}")
    ax_hist.set_xlabel("descriptor distance (Euclidean)")
    ax_hist.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
