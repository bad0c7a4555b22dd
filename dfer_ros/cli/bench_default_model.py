"""``dfer bench default_model [repeats]``: per-stage speed of the default model on a real face
(``dfer_ros.bench.default_model_bench``). Not a test: it prints median and best milliseconds."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench default_model",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("repeats", type=int, nargs="?", default=50, help="timed calls per stage (default 50)")
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args(argv)
    from dfer_ros.bench.default_model_bench import benchmark

    benchmark(args.repeats, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
