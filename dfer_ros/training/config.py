"""Typed training configuration read from ``models/train_*.yaml``.

A training config names a MODEL config (``models/*.yaml``, the architecture and label sets) and
says what to train it on and how. Unknown keys are an error so a typo never silently falls back
to a default. Relative paths (model, data root, output) are resolved against the config's folder
when they exist there, else against the working directory.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from dfer_ros.training.augment import AugmentConfig


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


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise TrainConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise TrainConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and isinstance(sub, type) and dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value or {}, f"{where}.{name}")
        elif name == "betas":
            kwargs[name] = tuple(float(v) for v in value)
        else:
            kwargs[name] = _coerce(value, hints.get(name), f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TrainConfigError(f"{where}: {exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """YAML reads ``1e-3`` (no dot) as a string and ``1`` as an int: turn them into the field's type."""
    if value is None:
        return None
    base = hint
    if typing.get_origin(hint) is Union:  # Optional[X]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if len(args) == 1 else None
    try:
        if base is float and not isinstance(value, bool):
            return float(value)
        if base is int and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value} is not a whole number")
            return int(value)
        if base is bool and not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true/false")
    except (TypeError, ValueError) as exc:
        raise TrainConfigError(f"{where}: {exc}") from None
    return value


def _resolve(value: Optional[str], base: Path) -> Optional[str]:
    if not value or Path(value).is_absolute():
        return value
    return str(base / value) if (base / value).exists() else value


def train_config_from_dict(data: dict[str, Any], source: Optional[str] = None) -> TrainConfig:
    cfg = _build(TrainConfig, data, source or "<dict>")
    cfg.source = source
    return cfg.validate()


def load_train_config(path: Union[str, Path], overrides: Optional[dict[str, Any]] = None) -> TrainConfig:
    """Read a training YAML; ``overrides`` maps dotted keys ("optim.epochs") to values."""
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"training config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path}: not valid YAML: {exc}") from exc
    for key, value in (overrides or {}).items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    cfg = train_config_from_dict(data, source=str(path))
    base = path.parent
    cfg.model = _resolve(cfg.model, base)
    cfg.init_checkpoint = _resolve(cfg.init_checkpoint, base)
    cfg.data.root = _resolve(cfg.data.root, base)
    cfg.loss.text_tokenizer = _resolve(cfg.loss.text_tokenizer, base)
    return cfg
