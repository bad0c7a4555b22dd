"""``dfer bench loaded``: the node over DDS beside one busy process per core, an empty room and 1, 4 and 25 faces
(``dfer_ros.bench.loaded_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.loaded_bench import FACES, markdown, run
from dfer_ros.cli.options import report_result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench loaded", description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, nargs="+", default=list(FACES), help="0 (an empty room), 1 or square numbers")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE", help="extra node parameter")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    result = run(args.faces, args.seconds, node_params=args.param)
    return report_result(result, markdown(result), args.out)


if __name__ == "__main__":
    sys.exit(main())
