"""``dfer synthetic-data LAYOUT OUT``: write a tiny learnable synthetic dataset in a public
layout (``dfer_ros.training.synthetic``), for smoke runs of the training tools."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from dfer_ros.training.synthetic import WRITERS, write


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer synthetic-data",
                                 description="Write a tiny learnable synthetic dataset in a public layout.")
    ap.add_argument("layout", choices=sorted(WRITERS))
    ap.add_argument("out", help="dataset root to create")
    ap.add_argument("--size", type=int, default=32, help="frame side in pixels")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    print(write(args.layout, args.out, args.size, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
