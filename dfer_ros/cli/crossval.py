"""``dfer crossval CONFIG --folds 1 2 3 4 5``: k-fold cross-validation (``dfer_ros.training.crossval``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from dfer_ros.cli.train import parse_overrides


def main(argv: Optional[list[str]] = None) -> int:
    from dfer_ros.training.crossval import run_crossval

    ap = argparse.ArgumentParser(prog="dfer crossval", description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--split", help="split each fold is scored on (default: the config's val_split)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        summary = run_crossval(args.config, args.folds, parse_overrides(args.set, "dfer crossval"), args.split)
    except (ValueError, FileNotFoundError) as exc:
        print(f"crossval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "folds"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
