"""``dfer bench expression``: the old and new default expression nets in one run, per-face ms
and pipeline fps (``dfer_ros.bench.expression_bench``). Not a test: it prints numbers."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench expression",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="webcam video frames per pipeline run")
    parser.add_argument("--repeats", type=int, default=200, help="calls of each net per batch size")
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args(argv)
    from dfer_ros.bench.expression_bench import markdown, run

    print("\n".join(markdown(run(args.frames, args.repeats, args.backend))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
