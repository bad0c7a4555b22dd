"""``dfer bench reid``: descriptor ms per face and dfer_node latency with re-identification on vs off.

    dfer bench reid --out out/reid.json [--seconds 20]

This module only parses arguments and calls ``dfer_ros.bench.reid_bench.run``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench reid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/reid.json"), help="report JSON (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per node run")
    args = parser.parse_args(argv)
    from dfer_ros.bench.reid_bench import run

    run(args.out, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
