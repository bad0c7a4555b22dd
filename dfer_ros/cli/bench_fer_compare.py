"""``dfer bench fer_compare``: dfer eval and the fer package on the same video, whole process, side by
side (``dfer_ros.bench.fer_compare``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench import fer_compare
from dfer_ros.cli.options import report_result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench fer_compare", description=fer_compare.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, help="video file (default: the webcam video cap12, 400x300)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, taking turns (median reported)")
    parser.add_argument("--fer-python", type=Path, help="python of a venv with fer (default: .fer-venv/bin/python "
                                                        "or $DFER_FER_PYTHON)")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    result = fer_compare.run(args.video, args.repeats, args.fer_python)
    return report_result(result, None, args.out)


if __name__ == "__main__":
    sys.exit(main())
