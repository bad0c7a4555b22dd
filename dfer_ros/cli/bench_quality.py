"""``dfer bench quality``: face-quality measurements behind the head-pose model and the
abstention thresholds' defaults (``dfer_ros.bench.quality_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.quality_bench import LONDON
from dfer_ros.perception.config import DetectionConfig


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench quality", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/quality/quality.json"), help="JSON report")
    parser.add_argument("--frames-dir", type=Path, default=None, help="write frames to check by eye here")
    parser.add_argument("--london", type=Path, default=LONDON, help="the London face set (default: %(default)s)")
    parser.add_argument("--model-depths", action="store_true",
                        help="also measure the face model: detector layout on the odd-numbered London neutral faces "
                             "(the calibration half) and MediaPipe mesh depths")
    parser.add_argument("--calibrate", action="store_true",
                        help="also measure sharpness and face size against label agreement on blurred / shrunk faces")
    parser.add_argument("--detector", default=DetectionConfig().detector, help="default: the pipeline's default")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from dfer_ros.bench.quality_bench import run

    report = run(args.detector, args.london, args.frames_dir, args.model_depths, args.calibrate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
