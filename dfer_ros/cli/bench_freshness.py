"""``dfer bench freshness``: freshness targets against the every-frame behaviour on the webcam videos, offline
(``dfer_ros.bench.freshness_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.freshness_bench import run
from dfer_ros.cli.options import report_result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench freshness", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    return report_result(run(), None, args.out)


if __name__ == "__main__":
    sys.exit(main())
