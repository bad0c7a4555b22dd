"""dfer train CONFIG: train a CLIP-adapter model as a training YAML (models/train_*.yaml) describes.

Examples:
  dfer train models/train_dfew.yaml --set data.root=/data/DFEW --set data.options.fold=2
  dfer train models/train_dfew.yaml --resume out/train_dfew_fold1/last
  torchrun --standalone --nproc_per_node 4 -m dfer_ros.cli.train models/train_dfew.yaml   # 4 GPUs, DDP

Under torchrun every process runs this same command; rank 0 writes the outputs and prints the summary.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional

from dfer_ros.cli.options import parse_key_values
from dfer_ros.deprecation import add_deprecated_flag


def parse_overrides(items: list[str], prog: str = "dfer train") -> dict:
    """``--set`` items (dotted keys) -> overrides; a malformed item is a usage error (exit 2, as argparse's)."""
    try:
        return parse_key_values(items, "--set item")
    except ValueError as exc:
        print(f"{prog}: error: {exc} (a dotted config key)", file=sys.stderr)
        raise SystemExit(2) from exc


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer train", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="training YAML (models/train_*.yaml)")
    ap.add_argument("--resume", help="a last/ folder written by an earlier run: continue it exactly")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. optim.epochs=3 or data.root=/data/DFEW")
    ap.add_argument("--out", dest="output_dir", help="output folder: shorthand for --set output_dir=...")
    add_deprecated_flag(ap, "--output-dir", "--out", "output_dir")
    ap.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars (log files)")
    ap.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (last/ is written; "
                    "--resume continues exactly), e.g. to fit a run into fixed-length job slots")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from dfer_ros.training.config import TrainConfigError, load_train_config
    from dfer_ros.datasets import DatasetError
    from dfer_ros.training.distributed import DistributedSetupError, init_distributed
    from dfer_ros.training.trainer import Trainer

    overrides = parse_overrides(args.set)
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.device:
        overrides["device"] = args.device
    if args.no_progress:
        overrides["progress"] = False
    dist = None
    try:
        cfg = load_train_config(args.config, overrides)
        dist = init_distributed(cfg.device)
        if not dist.is_main:  # one process speaks for the run
            logging.getLogger().setLevel(logging.WARNING)
        summary = Trainer(cfg, resume=args.resume, dist=dist).fit(max_steps=args.max_steps)
    except (TrainConfigError, DatasetError, FileNotFoundError, DistributedSetupError) as exc:
        print(f"dfer train: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # model config / checkpoint errors of the model package
        print(f"dfer train: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist is not None:
            dist.close()
    if dist.is_main:
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
