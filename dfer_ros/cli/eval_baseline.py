"""``dfer eval baseline``: the effect of per-person expression baselines on the London set.

    dfer eval baseline DIR [--people N] [--model default]

DIR holds ``neutral/NNN.jpg`` and ``happy/NNN.jpg`` of the same people. This module only parses arguments and
calls ``dfer_ros.evaluation.baseline_effect.run``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer eval baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--people", type=int, help="only the first N people")
    parser.add_argument("--model", default="default")
    args = parser.parse_args(argv)
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.evaluation.baseline_effect import run
    from dfer_ros.perception.config import PipelineConfig

    config = PipelineConfig()
    config.baseline.enabled = True
    config.reid.enabled = False  # one stream per person: the face id is the key
    pipeline = build_pipeline(config, args.model)
    try:
        print(run(args.root, pipeline, args.people).text())
    finally:
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
