"""dfer eval checkpoint CONFIG --checkpoint PATH --split NAME: score a trained model on one dataset split.

(Formerly ``dfer-eval-checkpoint`` and ``dfer-evaluate``, which still work for one release with a deprecation
line; ``dfer eval video`` / ``dfer eval bag`` run the runtime pipeline on a video or a bag.)

Writes metrics.json (WAR, UAR, macro F1, CCC, AU F1 with the thresholds tuned at training time),
per_class.md, confusion.png and predictions.npz to --out (default: <checkpoint folder>/eval_<split>).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from dfer_ros.cli.train import parse_overrides


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer eval checkpoint", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="training YAML naming the model config and the dataset")
    ap.add_argument("--checkpoint", required=True, help="model.safetensors written by dfer train (best/ or last/)")
    ap.add_argument("--split", required=True, help="dataset split, e.g. test, val, validation")
    ap.add_argument("--out", help="report folder")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    ap.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from dfer_ros.training.config import load_train_config
    from dfer_ros.training.trainer import evaluate_checkpoint

    overrides = parse_overrides(args.set, "dfer-eval-checkpoint")
    if args.device:
        overrides["device"] = args.device
    checkpoint = Path(args.checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / "model.safetensors"
    out = Path(args.out) if args.out else checkpoint.parent / f"eval_{args.split}"
    try:
        cfg = load_train_config(args.config, overrides)
        metrics = evaluate_checkpoint(cfg, checkpoint, args.split, out)
    except (ValueError, FileNotFoundError) as exc:  # config, dataset and checkpoint errors name their file
        print(f"dfer eval checkpoint: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2, default=str))
    print(f"report written to {out}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
