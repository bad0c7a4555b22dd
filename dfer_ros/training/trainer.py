"""Training and evaluation of a CLIP-adapter model (``clip_adapter.model.ClipAdapterModel``).

The CLIP tower stays frozen; adapters, LoRA matrices and the temporal head train with AdamW under a
linear-warmup + cosine schedule (per step), mixed precision on CUDA, and the multi-task loss of
``losses.py``. Each epoch ends with a validation pass, a metrics line, ``last/`` (weights + exact
training state) and, when the selection metric improved, ``best/``. AU thresholds are tuned on the
validation split and stored with the checkpoint, then applied unchanged to the test split.

Reproducibility: seeds are fixed after the model is built; item order depends on (seed, epoch) and
each item's randomness on (seed, epoch, index); the torch RNG state is saved with the optimizer.
So ``--resume`` from an epoch boundary reproduces an uninterrupted run.

Distributed (``torchrun``, see ``distributed.py``): one process per device, the model wrapped in
DistributedDataParallel. ``optim.batch_size`` is the GLOBAL batch: every step draws the same items
whatever the number of processes (``EpochBatchSampler``), each process takes its share, and the
task losses are weighted so that the averaged gradient is the global batch's (``losses.py``). Each
process's losses and every evaluation are summed over the processes (``DistContext``), so the
numbers equal a single-process run's. Rank 0 alone writes checkpoints, metrics and plots and prints.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml

from dfer_ros.scoring import metrics as M
from dfer_ros.training.clip_dataset import ClipDataset, make_collate
from dfer_ros.training.config import TrainConfig
from dfer_ros.datasets import read_split
from dfer_ros.training.distributed import DistContext, init_distributed, resolve_device
from dfer_ros.training.losses import LossWeights, MultiTaskLoss, au_pos_weights
from dfer_ros.training.sampling import EpochBatchSampler, balanced_sample_weights, class_weights
from dfer_ros.training.train_state import capture_rng_state, load_train_state, save_train_state

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"


__all__ = ["Trainer", "predict", "score", "evaluate_checkpoint", "resolve_device", "MODEL_FILE"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier per optimizer step: linear 0->1 over warmup, then cosine 1->min_ratio."""
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_model(cfg: TrainConfig):
    """The trainable network the training config names: ``model`` (+ ``init_checkpoint``) read by the
    model-spec rule of ``estimators.loader``, which for training must be a model config YAML."""
    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.clip_adapter.model import ClipAdapterModel
    from dfer_ros.estimators.loader import parse_model_spec

    spec = parse_model_spec(cfg.model, cfg.init_checkpoint or None)
    if spec.kind != "config":
        raise ValueError(f"training needs a model config YAML (models/*.yaml) as 'model', got {cfg.model!r} "
                         f"({'a registered model' if spec.kind == 'registered' else 'an exported folder'})")
    model_cfg = load_config(spec.path)
    model = ClipAdapterModel(model_cfg)
    if spec.checkpoint is not None:
        from dfer_ros.clip_adapter.checkpoint import load_checkpoint

        load_checkpoint(spec.checkpoint, model)
    return model, model_cfg


def build_dataset(cfg: TrainConfig, model_cfg, split: str, train: bool) -> ClipDataset:
    d = cfg.data
    data = read_split(d.kind, d.root, split, **d.options)
    return ClipDataset(data, model_cfg.expression_labels, model_cfg.au_names, model_cfg.image_size,
                       frames=d.frames or model_cfg.window, stride=d.stride,
                       sampling=d.train_sampling if train else d.eval_sampling,
                       augment=cfg.augment if train else None, seed=cfg.seed,
                       window_step=d.window_step if train else d.eval_window_step,
                       max_items=d.max_train_items if train else d.max_eval_items)


def _loader(dataset: ClipDataset, order, batch_size: int, num_workers: int, seed: int, epoch: int):
    from torch.utils.data import DataLoader

    from dfer_ros.clip_adapter.preprocess import to_pixel_values

    gen = torch.Generator()
    gen.manual_seed(int(seed) * 1000003 + int(epoch))  # worker seeds never touch the global RNG
    return DataLoader(dataset, batch_size=batch_size, sampler=list(map(int, order)), num_workers=num_workers,
                      collate_fn=make_collate(to_pixel_values), generator=gen,
                      persistent_workers=False, pin_memory=False)


class KeyedItems:
    """The training set addressed by ``EpochBatchSampler`` keys ``(index, is_padding)``: a padding
    slot is a real clip with every target ignored and index -1, so it adds nothing to any loss or sum.
    A module-level class, so it pickles into DataLoader worker processes."""

    def __init__(self, dataset: ClipDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> dict:
        index, padding = key
        item = self.dataset[int(index)]
        if padding:
            item.update(expression=np.int64(-1), va=np.full_like(item["va"], np.nan),
                        aus=np.full_like(item["aus"], -1), index=-1)
        return item


def _train_loader(dataset: ClipDataset, sampler: EpochBatchSampler, num_workers: int, seed: int, epoch: int, rank: int):
    from torch.utils.data import DataLoader

    from dfer_ros.clip_adapter.preprocess import to_pixel_values

    gen = torch.Generator()
    gen.manual_seed(int(seed) * 1000003 + int(epoch) + rank * 7919)  # worker seeds never touch the global RNG
    return DataLoader(KeyedItems(dataset), batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=make_collate(to_pixel_values), generator=gen,
                      persistent_workers=False, pin_memory=False)


OUTPUT_KEYS = ("probs", "va", "au_probs")


@torch.no_grad()
def predict(model, dataset: ClipDataset, batch_size: int, device: torch.device, amp: bool = False,
            num_workers: int = 0, progress: bool = False, desc: str = "eval", streaming: bool = True,
            dist: Optional[DistContext] = None) -> dict[str, np.ndarray]:
    """Model outputs and targets for every item of ``dataset`` in order.

    Per-frame datasets (Aff-Wild2) are evaluated like the node runs: each frame of a video is encoded
    ONCE and the head runs over the cached embeddings of every window (``streaming``); re-encoding T
    frames per labelled frame would cost T times more and give the same numbers.

    With a distributed ``dist`` every process predicts its share (whole videos when streaming, every
    world_size-th item otherwise) and the rows are summed into the whole set on every process, each
    row from its one owner: the result is the single-process prediction, with no item twice, so
    metrics computed from it (UAR, macro F1, CCC, tuned AU thresholds: none of them a mean of
    per-process values) equal a single-process evaluation. ``model`` is the bare module, not DDP's wrapper.
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    outs: dict[str, list] = {k: [] for k in ("probs", "va", "au_probs", "expression", "va_true", "aus_true")}
    use_amp = amp and device.type == "cuda"
    sharded = dist is not None and dist.enabled
    if streaming and dataset.split.per_frame and all(r.video is None for r in dataset.split.records):
        pred = _predict_streaming(model, dataset, batch_size, device, use_amp, progress, desc, dist)
        model.train(was_training)
        return pred
    mine = range(dist.rank, len(dataset), dist.world_size) if sharded else range(len(dataset))
    loader = _loader(dataset, mine, batch_size, num_workers, 0, 0)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            out = model(batch["pixels"].to(device), batch["mask"].to(device))
        _collect(outs, out, batch["expression"].numpy(), batch["va"].numpy(), batch["aus"].numpy())
    model.train(was_training)
    local = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outs.items()}
    if not sharded:
        return local
    return _assemble(dataset, np.asarray(mine, np.int64), {k: local[k] for k in OUTPUT_KEYS}, dist,
                     _output_widths(model))


def _targets(dataset: ClipDataset) -> dict[str, np.ndarray]:
    targets = [dataset.targets(i) for i in range(len(dataset))]
    return {"expression": np.array([t[0] for t in targets], np.int64),
            "va_true": np.stack([t[1] for t in targets]).astype(np.float32),
            "aus_true": np.stack([t[2] for t in targets]).astype(np.float32)}


def _output_widths(model) -> dict[str, int]:
    cfg = model.cfg
    return {"probs": len(cfg.expression_labels), "va": 2, "au_probs": len(cfg.au_names)}


def _assemble(dataset: ClipDataset, rows: np.ndarray, local: dict[str, np.ndarray], dist: DistContext,
              widths: Optional[dict[str, int]] = None) -> dict[str, np.ndarray]:
    """The whole set's predictions from each process's rows (see ``predict``) plus the targets."""
    widths = widths or {k: local[k].shape[1] for k in OUTPUT_KEYS}
    cols = np.cumsum([0] + [widths[k] for k in OUTPUT_KEYS])
    table = np.zeros((len(dataset), cols[-1]), np.float32)
    for k, a, b in zip(OUTPUT_KEYS, cols[:-1], cols[1:]):
        if len(rows):
            table[rows, a:b] = local[k]
    table = dist.assemble_rows(table)
    pred = {k: table[:, a:b].copy() for k, a, b in zip(OUTPUT_KEYS, cols[:-1], cols[1:])}
    pred.update(_targets(dataset))
    return pred


def _collect(outs: dict[str, list], out: dict, expression, va, aus) -> None:
    outs["probs"].append(torch.softmax(out["expression_logits"].float(), -1).cpu().numpy())
    outs["va"].append(out["valence_arousal"].float().cpu().numpy())
    outs["au_probs"].append(torch.sigmoid(out["au_logits"].float()).cpu().numpy())
    outs["expression"].append(np.asarray(expression))
    outs["va_true"].append(np.asarray(va))
    outs["aus_true"].append(np.asarray(aus))


def _predict_streaming(model, dataset: ClipDataset, batch_size: int, device, amp: bool, progress: bool,
                       desc: str, dist: Optional[DistContext] = None) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    from dfer_ros.clip_adapter.preprocess import to_pixel_values
    from dfer_ros.training.clip_dataset import read_image_rgb
    from dfer_ros.training.sampling import window_indices

    by_record: dict[int, list[int]] = {}
    for i, item in enumerate(dataset.items):
        by_record.setdefault(item.record, []).append(i)
    sharded = dist is not None and dist.enabled
    if sharded:  # whole videos per process, the longest first onto the least loaded process
        load = [0] * dist.world_size
        owner: dict[int, int] = {}
        for r in sorted(by_record, key=lambda r: (-len(by_record[r]), r)):
            owner[r] = int(np.argmin(load))
            load[owner[r]] += len(by_record[r])
        by_record = {r: v for r, v in by_record.items() if owner[r] == dist.rank}
    results: dict[int, tuple] = {}
    frame_batch = max(1, batch_size * dataset.t)
    for r, items in tqdm(sorted(by_record.items()), desc=desc, disable=not progress, leave=False):
        rec = dataset.split.records[r]
        present = rec.frame_present if rec.frame_present is not None else np.ones(rec.num_frames, bool)
        windows = [window_indices(dataset.items[i].end, dataset.t, dataset.stride) for i in items]
        needed = sorted({int(j) for idx, m in windows for j in idx[m] if present[j]})
        row = {j: k for k, j in enumerate(needed)}
        emb = []
        for a in range(0, len(needed), frame_batch):
            crops = np.stack([read_image_rgb(rec.frames[j], dataset.size) for j in needed[a:a + frame_batch]])
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
                emb.append(model.encode_frames(to_pixel_values(crops).to(device)).float())
        emb = torch.cat(emb) if emb else torch.zeros((0, model.cfg.embedding_dim), device=device)
        for a in range(0, len(items), batch_size):
            chunk = list(range(a, min(a + batch_size, len(items))))
            idx = np.stack([windows[c][0] for c in chunk])
            mask = np.stack([windows[c][1] for c in chunk]) & present[idx]
            mask[~mask.any(axis=1), -1] = True  # as load_clip: keep one position
            rows = np.vectorize(lambda j: row.get(int(j), 0))(idx) if len(needed) else np.zeros_like(idx)
            e = emb[torch.from_numpy(rows).to(device)] if len(needed) else \
                torch.zeros(idx.shape + (model.cfg.embedding_dim,), device=device)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
                out = model.forward_head(e, torch.from_numpy(mask).to(device))
            probs = torch.softmax(out["expression_logits"].float(), -1).cpu().numpy()
            va = out["valence_arousal"].float().cpu().numpy()
            au = torch.sigmoid(out["au_logits"].float()).cpu().numpy()
            for k, c in enumerate(chunk):
                results[items[c]] = (probs[k], va[k], au[k])
    if sharded:
        rows = np.array(sorted(results), np.int64)
        widths = _output_widths(model)
        local = {k: np.stack([results[i][j] for i in rows]) if len(rows) else np.zeros((0, widths[k]), np.float32)
                 for j, k in enumerate(OUTPUT_KEYS)}
        return _assemble(dataset, rows, local, dist, widths)
    n = len(dataset)
    return {"probs": np.stack([results[i][0] for i in range(n)]), "va": np.stack([results[i][1] for i in range(n)]),
            "au_probs": np.stack([results[i][2] for i in range(n)]), **_targets(dataset)}


def score(pred: dict[str, np.ndarray], num_classes: int, au_thresholds: Optional[np.ndarray] = None,
          tune_thresholds: bool = False, outputs=("expression", "va", "au")) -> dict[str, Any]:
    """Benchmark metrics of ``predict`` output; tasks without any valid target, or that the model does
    not output (its config's ``outputs``), are left out."""
    res: dict[str, Any] = {}
    y = pred["expression"]
    if "expression" in outputs and (y >= 0).any():
        res.update(M.expression_metrics(y, pred["probs"].argmax(1), num_classes))
    if "va" in outputs and np.isfinite(pred["va_true"]).any():
        res.update(M.va_ccc(pred["va_true"], pred["va"]))
    if "au" in outputs and pred["aus_true"].size and (pred["aus_true"] >= 0).any():
        res["au_f1@0.5"] = M.au_f1(pred["aus_true"], pred["au_probs"], 0.5)
        th = au_thresholds
        if tune_thresholds:
            th = M.tune_au_thresholds(pred["aus_true"], pred["au_probs"])
        if th is not None:
            res["au_thresholds"] = [float(v) for v in np.asarray(th)]
            res["au_f1"] = M.au_f1(pred["aus_true"], pred["au_probs"], th)
        else:
            res["au_f1"] = res["au_f1@0.5"]
    return res


def _outputs(model_cfg) -> tuple[str, ...]:
    return tuple(getattr(model_cfg, "outputs", ("expression", "va", "au")))


def selection_value(metrics: dict[str, Any], name: str, per_frame: bool) -> tuple[str, float]:
    if name == "auto":
        order = ("macro_f1", "ccc_mean", "au_f1") if per_frame else ("war", "uar", "ccc_mean", "au_f1")
        name = next((k for k in order if k in metrics), "loss")
    if name == "loss":
        return name, -float(metrics.get("train_loss", float("inf")))
    return name, float(metrics.get(name, float("nan")))


def write_report(pred: dict[str, np.ndarray], metrics: dict[str, Any], labels: list[str], folder: Path,
                 title: str) -> None:
    """metrics.json, per-class table, confusion-matrix PNG and the raw predictions of one evaluation."""
    from dfer_ros.scoring.plots import plot_confusion_matrix, write_per_class_table

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    np.savez_compressed(folder / "predictions.npz", **pred)
    y = pred["expression"]
    if (y >= 0).any():
        yp = pred["probs"].argmax(1)
        write_per_class_table(M.per_class_table(y, yp, labels), folder / "per_class.md")
        plot_confusion_matrix(M.confusion_matrix(y, yp, len(labels)), labels, folder / "confusion.png", title=title)


def format_metrics(metrics: dict[str, Any]) -> str:
    keys = ("war", "uar", "macro_f1", "ccc_valence", "ccc_arousal", "ccc_mean", "au_f1")
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics and isinstance(metrics[k], float))


@dataclass
class Trainer:
    """``dist`` None: a process group when started by torchrun (``init_distributed``), else one process."""

    cfg: TrainConfig
    resume: Optional[str] = None
    history: list[dict] = field(default_factory=list)
    dist: Optional[DistContext] = None

    def __post_init__(self):
        if self.dist is None:
            self.dist = init_distributed(self.cfg.device)
        self.device = self.dist.device
        if self.cfg.optim.torch_threads > 0:
            torch.set_num_threads(self.cfg.optim.torch_threads)
        self.out = Path(self.cfg.output_dir)
        self.progress = bool(self.cfg.progress and self.dist.is_main)
        self.model, self.model_cfg = build_model(self.cfg)
        self.model.to(self.device)
        self.ddp = self.model
        if self.dist.enabled:
            # DDP copies rank 0's weights to every process; heads whose task is off get no gradient
            # (find_unused_parameters), and AdamW then skips them, as in a single process
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        # each process its own dropout draws; rank 0 keeps the single-process seed
        seed_everything(self.cfg.seed + 7919 * self.dist.rank)
        d = self.cfg.data
        self.train_set = build_dataset(self.cfg, self.model_cfg, d.train_split, train=True)
        self.val_set = build_dataset(self.cfg, self.model_cfg, d.val_split, train=False) if d.val_split else None
        self.amp = bool(self.cfg.optim.amp and self.device.type == "cuda")
        self._build_loss()
        o = self.cfg.optim
        self.steps_per_epoch = math.ceil(len(self.train_set) / o.batch_size)
        self.sampler = EpochBatchSampler(len(self.train_set), o.batch_size, self.cfg.seed, self.dist.rank,
                                         self.dist.world_size, self.sample_weights)
        if self.dist.enabled and self.dist.is_main:
            per = -(-o.batch_size // self.dist.world_size)
            log.info("global batch %d over %d processes: %d clips per process%s", o.batch_size,
                     self.dist.world_size, per, "" if o.batch_size % self.dist.world_size == 0 else
                     " (not divisible: some slots are ignored padding)")
        params = self.model.trainable_parameters()
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.steps_per_epoch * o.epochs, o.warmup_steps, o.min_lr_ratio))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.start_epoch = 0
        self.best_value = -float("inf")
        self.best_epoch: Optional[int] = None
        self._in_epoch: Optional[dict] = None  # set while saving / after loading a mid-epoch state
        if self.resume:
            self._resume(Path(self.resume))

    def _build_loss(self) -> None:
        c, n = self.cfg.loss, len(self.model_cfg.expression_labels)
        y = self.train_set.expression_targets()
        self.sample_weights = None
        cw = None
        if c.class_balance == "weights" and (y >= 0).any():
            cw = torch.from_numpy(class_weights(y, n, c.class_weight_power)).to(self.device)
        elif c.class_balance == "sampler" and (y >= 0).any():
            self.sample_weights = balanced_sample_weights(y, n)
        pw = None
        if self.train_set.has_aus:
            pw = torch.from_numpy(au_pos_weights(self.train_set.au_targets(), c.au_max_pos_weight)).to(self.device)
        outputs = set(_outputs(self.model_cfg))
        weights = LossWeights(expression=c.expression if self.train_set.has_expression else 0.0,
                              va=c.va if self.train_set.has_va and "va" in outputs else 0.0,
                              au=c.au if self.train_set.has_aus and "au" in outputs else 0.0, text=c.text)
        self.criterion = MultiTaskLoss(weights, c.label_smoothing, cw, pw)
        self.text_targets = None
        if c.text > 0:
            from dfer_ros.training.text_supervision import TextSupervision

            self.text_targets = TextSupervision(self.model_cfg, self.device, c.text_tokenizer)

    def _resume(self, folder: Path) -> None:
        from dfer_ros.clip_adapter.checkpoint import load_checkpoint

        load_checkpoint(folder / MODEL_FILE, self.model)
        doc = load_train_state(folder, self.optimizer, self.scheduler, self.scaler, rank=self.dist.rank)
        if not doc["rng_restored"]:
            log.warning("%s holds no RNG state for process %d (saved by %s process(es)): its dropout draws "
                        "will differ from an uninterrupted run", folder, self.dist.rank, doc.get("world_size", 1))
        self.start_epoch = int(doc["epoch"]) + 1
        self.best_value = float(doc.get("best_value", -float("inf")))
        self.best_epoch = doc.get("best_epoch")
        self._in_epoch = doc.get("in_epoch")
        if self._in_epoch:
            self.start_epoch = int(self._in_epoch["epoch"])
        self.history = list(doc.get("history", []))
        log.info("resumed from %s at epoch %d", folder, self.start_epoch)

    def _save(self, folder: Path, epoch: int, metrics: dict[str, Any], with_state: bool) -> None:
        """Rank 0 writes; with ``with_state`` every process must call (the RNG states are gathered)."""
        from dfer_ros.clip_adapter.checkpoint import save_checkpoint

        rng_states = self.dist.gather_objects(capture_rng_state()) if with_state else None
        if not self.dist.is_main:
            return
        extra = {"epoch": epoch, "metrics": metrics, "train_config": self.cfg.to_dict(),
                 "au_thresholds": metrics.get("au_thresholds")}
        save_checkpoint(folder / MODEL_FILE, self.model, self.model_cfg, extra)
        if with_state:
            save_train_state(folder, self.optimizer, self.scheduler, self.scaler, epoch,
                             {"best_value": self.best_value, "best_epoch": self.best_epoch,
                              "history": self.history, "in_epoch": self._in_epoch}, rng_states)

    def _loss_scale(self, batch: dict) -> Optional[dict[str, float]]:
        """Per-task weights making DDP's averaged gradient the global batch's (``losses.py``)."""
        if not self.dist.enabled:
            return None
        local = self.criterion.denominators(batch)
        keys = sorted(local)
        mine = torch.stack([local[k] for k in keys])
        total = self.dist.sum_tensor(mine)
        w = self.dist.world_size
        return {k: (w * float(m) / float(t)) if float(t) > 0 else 0.0 for k, m, t in zip(keys, mine, total)}

    def train_epoch(self, epoch: int, max_steps: Optional[int] = None) -> Optional[dict[str, float]]:
        """One epoch (or its rest after a mid-epoch resume). Returns the epoch's mean losses, or None when
        it stopped early after ``max_steps`` optimizer steps (the state is then saved to last/)."""
        from tqdm import tqdm

        o = self.cfg.optim
        self.train_set.set_epoch(epoch)
        done, sums, count = 0, {}, 0
        if self._in_epoch and self._in_epoch["epoch"] == epoch:  # resuming inside this epoch
            done = self._in_epoch["steps_done"]
            if self.dist.is_main:  # the saved sums are over all processes: counted once, on rank 0
                sums, count = dict(self._in_epoch["sums"]), self._in_epoch["count"]
        self._in_epoch = None
        self.sampler.set_epoch(epoch, start_step=done)
        loader = _train_loader(self.train_set, self.sampler, o.num_workers, self.cfg.seed, epoch, self.dist.rank)
        self.model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not self.progress, leave=False,
                   initial=done, total=self.steps_per_epoch)
        steps_here = 0
        for batch in bar:
            # this step's items over all processes; the per-process loss values are weighted so that their
            # sum over processes is the global batch's loss times that count (single-process bookkeeping)
            n_global = len(self.sampler.global_items(done))
            n_share = n_global / self.dist.world_size
            batch = {k: v.to(self.device) for k, v in batch.items()}
            scale = self._loss_scale(batch)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp):
                out = self.ddp(batch["pixels"], batch["mask"])
            loss, parts = self.criterion(out, batch, scale)
            if self.text_targets is not None:
                tl = self.text_targets.loss(out, batch["expression"])
                if scale is not None:
                    tl = tl * scale["text"]
                loss = loss + self.cfg.loss.text * tl
                parts["text"] = float(tl.detach())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}: {parts}")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if o.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.trainable_parameters(), o.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            count += int((batch["index"] >= 0).sum())  # padding slots are not items
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n_share
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * n_share
            if self.progress:
                bar.set_postfix(loss=f"{sums['loss'] / max(count, 1):.4f}")
            done += 1
            steps_here += 1
            stop = max_steps is not None and steps_here >= max_steps
            periodic = o.checkpoint_every_steps > 0 and done % o.checkpoint_every_steps == 0
            if (stop or periodic) and done < self.steps_per_epoch:
                total, total_count = self._sum_over_processes(sums, count)
                self._in_epoch = {"epoch": epoch, "steps_done": done, "sums": total, "count": total_count}
                self._save(self.out / "last", epoch - 1, {"train_loss": total["loss"] / max(total_count, 1)},
                           with_state=True)
                self._in_epoch = None
                if stop:
                    bar.close()
                    return None
        total, total_count = self._sum_over_processes(sums, count)
        return {f"train_{k}": v / max(total_count, 1) for k, v in total.items()}

    def _sum_over_processes(self, sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
        if not self.dist.enabled:
            return dict(sums), count
        keys = sorted(sums)  # the same on every process after one step (the parts follow the config)
        total = self.dist.sum_floats({**{k: sums.get(k, 0.0) for k in keys}, "__count": float(count)})
        n = int(round(total.pop("__count")))
        return total, n

    def fit(self, stop_after: Optional[int] = None, max_steps: Optional[int] = None) -> dict[str, Any]:
        """Train the remaining epochs, or only up to epoch ``stop_after``, or only ``max_steps`` optimizer
        steps (a run in parts: each part ends with last/ written, ``--resume`` continues it exactly)."""
        o = self.cfg.optim
        main = self.dist.is_main
        last_epoch = o.epochs if stop_after is None else min(o.epochs, stop_after)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        per_frame = self.train_set.split.per_frame
        steps_left = max_steps
        for epoch in range(self.start_epoch, last_epoch):
            t0 = time.perf_counter()
            before = self.scheduler.last_epoch
            train = self.train_epoch(epoch, steps_left)
            if train is None:
                self.dist.barrier()  # last/ is complete before any process ends
                if main:
                    print(f"stopped inside epoch {epoch + 1} after {max_steps} step(s); resume with --resume "
                          f"{self.out / 'last'}", flush=True)
                return {"stopped_in_epoch": epoch + 1, "output_dir": str(self.out)}
            if steps_left is not None:
                steps_left -= self.scheduler.last_epoch - before
            record: dict[str, Any] = {"epoch": epoch + 1, **train, "lr": float(self.scheduler.get_last_lr()[0])}
            if self.val_set is not None:
                pred = predict(self.model, self.val_set, o.eval_batch_size, self.device, self.amp, o.num_workers,
                               self.progress, desc="val", dist=self.dist)
                record.update({f"val_{k}": v for k, v in score(pred, len(self.model_cfg.expression_labels),
                                                               tune_thresholds=self.cfg.tune_au_thresholds,
                                                               outputs=_outputs(self.model_cfg)).items()})
            record["seconds"] = round(time.perf_counter() - t0, 3)
            self.history.append(record)
            val = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
            name, value = selection_value(val or record, self.cfg.select_metric, per_frame)
            self.best_name = name
            # the first epoch always writes best/ (also when its metric is NaN), later ones only when better
            improved = self.best_epoch is None or value > self.best_value
            if improved:
                self.best_value = value if not math.isnan(value) else -float("inf")
                self.best_epoch = epoch + 1
            if main:
                print(f"epoch {epoch + 1}/{o.epochs} loss {record['train_loss']:.4f} lr {record['lr']:.2e} | "
                      f"val {format_metrics(val) or '-'} | {name} {value:.4f}{' *' if improved else ''} | "
                      f"{record['seconds']:.1f} s", flush=True)
            if improved:
                self._save(self.out / "best", epoch, val or record, with_state=False)
            self._save(self.out / "last", epoch, val or record, with_state=True)
            if main:
                with open(self.out / "metrics.jsonl", "w") as handle:
                    for h in self.history:
                        handle.write(json.dumps(h) + "\n")
            if steps_left is not None and steps_left <= 0 and epoch + 1 < last_epoch:
                self.dist.barrier()
                if main:
                    print(f"stopped after epoch {epoch + 1} ({max_steps} step(s)); resume with --resume "
                          f"{self.out / 'last'}", flush=True)
                return {"stopped_after_epoch": epoch + 1, "output_dir": str(self.out)}
        name = getattr(self, "best_name", self.cfg.select_metric)
        summary: dict[str, Any] = {"select_metric": name, "best_value": self.best_value,
                                   "best_epoch": self.best_epoch, "epochs": o.epochs,
                                   "epochs_run": len(self.history), "output_dir": str(self.out),
                                   "best_checkpoint": str(self.out / "best" / MODEL_FILE)}
        if self.history and main:
            from dfer_ros.scoring.plots import plot_training_curves

            keys = [k for k in self.history[-1] if k in ("train_loss", "val_war", "val_uar", "val_macro_f1",
                                                         "val_ccc_mean", "val_au_f1")]
            plot_training_curves(self.history, self.out / "curves.png", keys)
        self.dist.barrier()  # best/ and last/ are complete before any process reads them or ends
        if self.cfg.data.test_split and last_epoch == o.epochs:
            summary["test"] = evaluate_checkpoint(self.cfg, self.out / "best" / MODEL_FILE, self.cfg.data.test_split,
                                                  self.out / f"eval_{self.cfg.data.test_split}", model=self.model,
                                                  dist=self.dist)
        return summary


def evaluate_checkpoint(cfg: TrainConfig, checkpoint, split: str, out_dir, model=None,
                        dist: Optional[DistContext] = None) -> dict[str, Any]:
    """Evaluate a saved checkpoint on one split with the AU thresholds tuned at training time.
    With a distributed ``dist`` every process takes a share and rank 0 writes the report."""
    from dfer_ros.clip_adapter.checkpoint import load_checkpoint

    device = dist.device if dist is not None else resolve_device(cfg.device)
    if cfg.optim.torch_threads > 0:
        torch.set_num_threads(cfg.optim.torch_threads)
    if model is None:
        model, model_cfg = build_model(cfg)
    else:
        model_cfg = model.cfg
    extra = load_checkpoint(checkpoint, model)
    model.to(device)
    dataset = build_dataset(cfg, model_cfg, split, train=False)
    amp = bool(cfg.optim.amp and device.type == "cuda")
    main = dist is None or dist.is_main
    pred = predict(model, dataset, cfg.optim.eval_batch_size, device, amp, cfg.optim.num_workers,
                   cfg.progress and main, desc=split, dist=dist)
    th = extra.get("au_thresholds")
    metrics = score(pred, len(model_cfg.expression_labels), np.asarray(th) if th else None,
                    outputs=_outputs(model_cfg))
    metrics.update({"split": split, "items": len(dataset), "checkpoint": str(checkpoint),
                    "dataset": dataset.split.name})
    if main:
        write_report(pred, metrics, list(model_cfg.expression_labels), Path(out_dir), f"{dataset.split.name}")
    return metrics
