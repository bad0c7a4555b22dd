"""k-fold cross-validation runs (DFEW and MAFW are scored as the mean over their 5 folds).

    dfer crossval models/train_dfew.yaml --folds 1 2 3 4 5 [--set KEY=VALUE ...]

Trains one model per fold (``data.options.fold = k``, output ``<output_dir>/fold<k>``), evaluates each
fold's best checkpoint on its test split, and writes ``<output_dir>/crossval.json`` with the per-fold
metrics and their mean and standard deviation. A fold whose ``last/`` exists is resumed, one whose
``eval_<split>/metrics.json`` exists is not trained again, so an interrupted sweep continues.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

METRICS = ("war", "uar", "macro_f1", "ccc_mean", "au_f1")


def run_crossval(config: str, folds: Sequence[int], overrides: Optional[dict] = None,
                 eval_split: Optional[str] = None) -> dict:
    from dfer_ros.training.config import load_train_config
    from dfer_ros.training.trainer import MODEL_FILE, Trainer, evaluate_checkpoint

    base = load_train_config(config, overrides)
    root_out = Path(base.output_dir)
    per_fold = {}
    for k in folds:
        fold_over = dict(overrides or {})
        fold_over["data.options.fold"] = int(k)
        fold_over["output_dir"] = str(root_out / f"fold{k}")
        fold_over["data.test_split"] = None  # evaluated below, once, with the best checkpoint
        cfg = load_train_config(config, fold_over)
        split = eval_split or cfg.data.val_split or "test"
        out = Path(cfg.output_dir)
        report = out / f"eval_{split}" / "metrics.json"
        if report.is_file():
            per_fold[k] = json.loads(report.read_text())
            print(f"fold {k}: already evaluated ({report})", flush=True)
            continue
        resume = out / "last" if (out / "last" / "train_state.json").is_file() else None
        Trainer(cfg, resume=str(resume) if resume else None).fit()
        per_fold[k] = evaluate_checkpoint(cfg, out / "best" / MODEL_FILE, split, out / f"eval_{split}")
        print(f"fold {k}: " + " ".join(f"{m} {per_fold[k][m]:.4f}" for m in METRICS if m in per_fold[k]), flush=True)
    summary: dict = {"config": str(config), "folds": {str(k): v for k, v in per_fold.items()}}
    for m in METRICS:
        vals = [v[m] for v in per_fold.values() if m in v]
        if vals:
            summary[f"{m}_mean"] = float(np.mean(vals))
            summary[f"{m}_std"] = float(np.std(vals))
    root_out.mkdir(parents=True, exist_ok=True)
    (root_out / "crossval.json").write_text(json.dumps(summary, indent=2))
    return summary
