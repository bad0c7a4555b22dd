"""Which frames make a training or evaluation clip, and how often each clip is drawn.

A clip is T frames ``stride`` apart. ``random`` draws the start (training), ``center`` takes the
middle window and ``uniform`` spreads T frames evenly over the whole clip (evaluation of clip
datasets, as the DFEW/FERV39k/MAFW papers do). Clips shorter than needed are padded by repeating
their last frame and the padding is masked out, so the temporal head sees what the node's
streaming buffer would give it (a shorter window), not invented motion.

Per-frame datasets (Aff-Wild2) are cut into causal windows that END at a labelled frame: the label
of a window is the label of its last frame, as the node reports the newest frame of a track.
All randomness comes from a numpy Generator passed in, so a run is a function of its seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

MODES = ("random", "center", "uniform")


def clip_indices(num_frames: int, t: int, stride: int = 1, mode: str = "random",
                 rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices (t,) int64, mask (t,) bool) of the frames of one clip."""
    if num_frames <= 0:
        raise ValueError("a clip needs at least one frame")
    if t <= 0 or stride <= 0:
        raise ValueError(f"t and stride must be positive (t={t}, stride={stride})")
    if mode not in MODES:
        raise ValueError(f"sampling mode must be one of {MODES}, not {mode!r}")
    if mode == "uniform":
        if num_frames >= t:
            # centre of each of t equal segments
            idx = np.floor((np.arange(t) + 0.5) * num_frames / t).astype(np.int64)
            return np.minimum(idx, num_frames - 1), np.ones(t, bool)
        mode = "center"
    span = (t - 1) * stride + 1
    if span <= num_frames:
        slack = num_frames - span
        if mode == "random":
            if rng is None:
                raise ValueError("random sampling needs a numpy Generator")
            start = int(rng.integers(0, slack + 1))
        else:
            start = slack // 2
        return start + stride * np.arange(t, dtype=np.int64), np.ones(t, bool)
    idx = stride * np.arange(t, dtype=np.int64)
    mask = idx < num_frames
    if not mask.any():
        mask[0] = True
    return np.minimum(idx, num_frames - 1), mask


def window_indices(end: int, t: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Causal window of t frames ending at ``end``; positions before frame 0 repeat it and are masked."""
    idx = end - stride * np.arange(t - 1, -1, -1, dtype=np.int64)
    mask = idx >= 0
    return np.maximum(idx, 0), mask


def window_ends(labelled: np.ndarray, step: int) -> np.ndarray:
    """Every ``step``-th labelled frame of a video (the ends of its training windows)."""
    frames = np.flatnonzero(labelled)
    return frames[:: max(1, int(step))]


@dataclass(frozen=True)
class ClipItem:
    """One sample of an epoch: a record and, for per-frame data, the window's last frame."""

    record: int
    end: int = -1


def class_weights(labels: np.ndarray, num_classes: int, power: float = 1.0) -> np.ndarray:
    """Inverse-frequency class weights (labels < 0 ignored) normalised to mean 1 over present classes.

    power=1 is plain inverse frequency, 0.5 its square root (milder); absent classes get 0.
    """
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes).astype(np.float64)
    w = np.zeros(num_classes)
    present = counts > 0
    w[present] = counts[present] ** (-power)
    if present.any():
        w[present] *= present.sum() / w[present].sum()
    return w.astype(np.float32)


def balanced_sample_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-sample drawing probabilities making every present class equally likely (unlabelled: mean)."""
    labels = np.asarray(labels, np.int64)
    cw = class_weights(labels, num_classes, power=1.0)
    w = np.where(labels >= 0, cw[np.maximum(labels, 0)], 0.0).astype(np.float64)
    if (labels < 0).any():
        w[labels < 0] = w[labels >= 0].mean() if (labels >= 0).any() else 1.0
    return w / w.sum()


def epoch_order(num_items: int, epoch: int, seed: int, balanced_weights: Optional[np.ndarray] = None) -> np.ndarray:
    """The item order of one epoch: a permutation, or a class-balanced draw with replacement.

    Depends only on (seed, epoch), so a resumed run visits the same items as an uninterrupted one.
    """
    rng = np.random.default_rng([seed, epoch, 0x5A3])
    if balanced_weights is None:
        return rng.permutation(num_items)
    return rng.choice(num_items, size=num_items, replace=True, p=balanced_weights)


class EpochBatchSampler:
    """This process's batches of one epoch, one list per optimizer step (a DataLoader ``batch_sampler``).

    The epoch's order (``epoch_order``: same on every process, depends on (seed, epoch) only) is cut
    into GLOBAL batches of ``global_batch`` items, so the items of a step do not depend on how many
    processes share it. Item j of a global batch goes to process ``j % world_size`` (the interleaving
    of torch's DistributedSampler). Every process of a step gets the same number of slots; a slot
    without an item (the epoch's short last batch, or a global batch not divisible by the world size)
    is padding: the key ``(item, True)``, whose targets the trainer ignores, so no item counts twice
    and every process runs every step (DDP's gradient all_reduce needs all of them). Keys are
    ``(item index, is_padding)``. ``set_epoch`` picks the epoch (as DistributedSampler's) and the step
    to start at, which makes the step the unit of an exact resume.
    """

    def __init__(self, num_items: int, global_batch: int, seed: int, rank: int = 0, world_size: int = 1,
                 balanced_weights: Optional[np.ndarray] = None):
        if num_items < 1 or global_batch < 1:
            raise ValueError("a sampler needs at least one item and a batch of at least one")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.num_items, self.global_batch, self.seed = int(num_items), int(global_batch), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.balanced_weights = balanced_weights
        self.epoch, self.start_step = 0, 0
        self._order = epoch_order(self.num_items, 0, self.seed, balanced_weights)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_items // self.global_batch)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start step {start_step} outside an epoch of {self.steps_per_epoch} steps")
        self.epoch, self.start_step = int(epoch), int(start_step)
        self._order = epoch_order(self.num_items, self.epoch, self.seed, self.balanced_weights)

    def global_items(self, step: int) -> np.ndarray:
        """The items of global batch ``step`` of the current epoch (all processes together)."""
        return self._order[step * self.global_batch:(step + 1) * self.global_batch]

    def local_keys(self, step: int) -> list[tuple[int, bool]]:
        items = self.global_items(step)
        slots = -(-len(items) // self.world_size)
        mine = [(int(i), False) for i in items[self.rank::self.world_size]]
        return mine + [(int(items[0]), True)] * (slots - len(mine))

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step

    def __iter__(self):
        for step in range(self.start_step, self.steps_per_epoch):
            yield self.local_keys(step)
