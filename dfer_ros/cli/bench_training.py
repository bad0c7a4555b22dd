"""``dfer bench training``: clips and frames per second of a training step (``dfer_ros.bench.training_bench``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from dfer_ros.bench.training_bench import REPO_MODELS, run
from dfer_ros.deprecation import add_deprecated_flag


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer bench training", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO_MODELS / "clip_vitb16_abaw.yaml",
                    help="CLIP-adapter model config YAML")
    add_deprecated_flag(ap, "--config", "--model", "model", type=Path)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32], help="clips per step (one run each)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model's window)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-amp", action="store_true", help="fp32 instead of fp16 autocast")
    ap.add_argument("--allow-cpu", action="store_true", help="run on CPU when CUDA is missing (use a tiny config)")
    ap.add_argument("--out", type=Path, help="also write the results here (JSON)")
    add_deprecated_flag(ap, "--json", "--out", "out", type=Path)
    args = ap.parse_args(argv)
    import torch

    if torch.cuda.is_available():
        device = "cuda"
    elif args.allow_cpu:
        device = "cpu"
    else:
        print("training_bench skipped: CUDA is not available (a ViT-B/16 training step needs a GPU; "
              "--allow-cpu with --model models/tiny_test.yaml runs a CPU smoke run)")
        return 0
    results = []
    for b in args.batch:
        try:
            results.append(run(args.model, b, args.frames, args.steps, args.warmup, not args.no_amp, device))
        except torch.cuda.OutOfMemoryError as exc:  # report and go on with the other batch sizes
            print(f"batch {b}: out of GPU memory ({exc})".splitlines()[0])
            torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
