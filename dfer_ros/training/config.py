"""Typed training configuration read from ``models/train_*.yaml``.

A training config names a MODEL config (``models/*.yaml``, the architecture and label sets) and
says what to train it on and how. Unknown keys are an error so a typo never silently falls back
to a default. Relative paths (model, data root, output) are resolved against the config's folder
when they exist there, else against the working directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from dfer_ros.training.augment import AugmentConfig
from dfer_ros.typed_config import build_dataclass, read_yaml_mapping, resolve_near


class TrainConfigError(ValueError):
    """A training config is missing, malformed or inconsistent; the message names the file and key."""


@dataclass
class DataConfig:
    kind: str = "manifest"  # dfew | ferv39k | mafw | affwild2 | manifest
    root: str = ""  # dataset root (for manifest: the CSV file)
    options: dict[str, Any] = field(default_factory=dict)  # reader keyword arguments (fold, tasks, ...)
    train_split: str = "train"
    val_split: Optional[str] = "test"  # used for model selection and AU threshold tuning
    test_split: Optional[str] = None
    frames: Optional[int] = None  # T; None: the model's window
    stride: int = 1
    train_sampling: str = "random"
    eval_sampling: str = "uniform"
    window_step: int = 8  # per-frame data: a training window ends at every n-th labelled frame
    eval_window_step: int = 1  # per-frame data at evaluation: 1 = every labelled frame (the benchmark protocol)
    max_train_items: Optional[int] = None
    max_eval_items: Optional[int] = None


@dataclass
class OptimConfig:
    epochs: int = 10
    batch_size: int = 8
    eval_batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01  # cosine decays to lr * this
    grad_clip: float = 1.0  # 0 = off
    amp: bool = True  # mixed precision, only on CUDA
    num_workers: int = 0
    checkpoint_every_steps: int = 0  # >0: also write last/ every n steps inside an epoch (long epochs)
    torch_threads: int = 0  # >0: torch.set_num_threads (1 is fastest on small, busy CPUs); 0: torch's default


@dataclass
class LossConfig:
    expression: float = 1.0
    va: float = 1.0
    au: float = 1.0
    text: float = 0.0  # text-prompt supervision of the image features (needs the model's text side)
    text_tokenizer: Optional[str] = None  # tokenizer folder; None: the model config's text.tokenizer / clip_weights
    label_smoothing: float = 0.1
    class_balance: str = "none"  # none | weights (weighted CE) | sampler (class-balanced drawing)
    class_weight_power: float = 0.5
    au_max_pos_weight: float = 10.0


@dataclass
class TrainConfig:
    model: str = "models/tiny_test.yaml"
    init_checkpoint: Optional[str] = None  # start from these adapted weights (e.g. another dataset's run)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    output_dir: str = "out/train"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    select_metric: str = "auto"  # metric choosing the best epoch: auto | war | uar | macro_f1 | ccc_mean | au_f1
    tune_au_thresholds: bool = True
    progress: bool = True
    source: Optional[str] = field(default=None, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source", None)
        data["optim"]["betas"] = list(data["optim"]["betas"])
        return data

    def validate(self) -> "TrainConfig":
        where = self.source or "<config>"
        problems = []
        if self.data.kind not in ("dfew", "ferv39k", "mafw", "affwild2", "manifest"):
            problems.append(f"data.kind {self.data.kind!r} unknown")
        if self.loss.class_balance not in ("none", "weights", "sampler"):
            problems.append("loss.class_balance must be none, weights or sampler")
        if self.optim.epochs < 1 or self.optim.batch_size < 1:
            problems.append("optim.epochs and optim.batch_size must be >= 1")
        if self.data.stride < 1:
            problems.append("data.stride must be >= 1")
        if self.data.train_sampling not in ("random", "center", "uniform") or \
                self.data.eval_sampling not in ("random", "center", "uniform"):
            problems.append("sampling must be random, center or uniform")
        if self.select_metric not in ("auto", "war", "uar", "macro_f1", "ccc_mean", "au_f1", "loss"):
            problems.append(f"select_metric {self.select_metric!r} unknown")
        if problems:
            raise TrainConfigError(f"{where}: " + "; ".join(problems))
        return self


def train_config_from_dict(data: dict[str, Any], source: Optional[str] = None) -> TrainConfig:
    cfg = build_dataclass(TrainConfig, data, source or "<dict>", TrainConfigError)
    cfg.source = source
    return cfg.validate()


def load_train_config(path: Union[str, Path], overrides: Optional[dict[str, Any]] = None) -> TrainConfig:
    """Read a training YAML; ``overrides`` maps dotted keys ("optim.epochs") to values."""
    path = Path(path)
    data = read_yaml_mapping(path, "training config", TrainConfigError)
    for key, value in (overrides or {}).items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    cfg = train_config_from_dict(data, source=str(path))
    base = path.parent
    cfg.model = resolve_near(cfg.model, base)
    cfg.init_checkpoint = resolve_near(cfg.init_checkpoint, base)
    cfg.data.root = resolve_near(cfg.data.root, base)
    cfg.loss.text_tokenizer = resolve_near(cfg.loss.text_tokenizer, base)
    return cfg
