"""dfer preprocess VIDEOS... --out CROPS: aligned face crops of raw videos with the node's own detector,
tracker and aligner (``dfer_ros.training.preprocess``); resumable, parallel over processes.

Examples:
  dfer preprocess videos/ --out crops/ --model models/clip_vitb16_abaw.yaml --workers 8
  dfer preprocess a.mp4 b.mp4 --out crops/ --keep all
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from dfer_ros.deprecation import add_deprecated_flag
from dfer_ros.estimators.loader import SPEC_HELP


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer preprocess", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="video files or folders searched for videos")
    ap.add_argument("--out", required=True, help="output folder (one frame folder per video)")
    ap.add_argument("--model", default="models/tiny_test.yaml",
                    help=f"the model the crops are for, which sets crop size and face scale: {SPEC_HELP} "
                         "(default: %(default)s)")
    ap.add_argument("--pipeline-config", help="pipeline YAML (detector/tracker settings of the node)")
    add_deprecated_flag(ap, "--pipeline", "--pipeline-config", "pipeline_config")
    ap.add_argument("--keep", choices=("main", "all"), default="main", help="keep only the main face, or all")
    ap.add_argument("--workers", type=int, default=1,
                    help=f"videos processed in parallel, one process each (this machine has {os.cpu_count()} CPUs)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (log files)")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from dfer_ros.estimators.loader import crop_spec_for
    from dfer_ros.perception.config import load_pipeline_config
    from dfer_ros.training.preprocess import find_videos, preprocess_videos

    try:
        spec = crop_spec_for(args.model)
        cfg = load_pipeline_config(args.pipeline_config)
        results = preprocess_videos(find_videos(args.inputs), Path(args.out), spec, cfg, args.keep,
                                    progress=not args.no_progress, workers=args.workers)
    except (ValueError, FileNotFoundError) as exc:
        print(f"dfer preprocess: {exc}", file=sys.stderr)
        return 2
    summary = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    print(json.dumps(summary))
    for r in results:
        if r.status == "failed":
            print(f"failed: {r.video}: {r.reason}", file=sys.stderr)
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
