"""``dfer bench brief_faces``: how many real face stills shown for 0.3 s are reported, with the
default detection plan and with the whole frame on every frame (``dfer_ros.bench.brief_faces_bench``)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.brief_faces_bench import markdown, run
from dfer_ros.cli.options import report_result
from dfer_ros.perception.config import load_pipeline_config


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench brief_faces",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=60, help="about this many stills per kind")
    parser.add_argument("--pipeline-config", type=Path, help="pipeline YAML (default: built-in defaults)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run(args.per_kind, args.model, args.backend, load_pipeline_config(args.pipeline_config))
    return report_result(result, markdown(result), args.out)


if __name__ == "__main__":
    sys.exit(main())
