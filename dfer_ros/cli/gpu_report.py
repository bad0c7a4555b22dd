"""``dfer bench gpu``: GPU figures of the torch backend and of training in one JSON report
(``dfer_ros.bench.gpu_report``). Without CUDA it writes a report that says it skipped and exits 0."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.gpu_report import DEFAULT_CONFIG, DEFAULT_PYTEST_ARGS, DTYPES, SECTIONS, run
from dfer_ros.deprecation import add_deprecated_flag


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="dfer bench gpu", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out/gpu_report.json"))
    ap.add_argument("--model", type=Path, default=DEFAULT_CONFIG, help="CLIP-adapter model config YAML")
    add_deprecated_flag(ap, "--config", "--model", "model", type=Path)
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp16", "bf16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--faces", type=int, default=8, help="faces per frame of the streaming and compile step")
    ap.add_argument("--compile-modes", nargs="*", default=["default", "reduce-overhead"])
    ap.add_argument("--compile-backend", default="inductor",
                    help="torch.compile backend; 'eager' traces without code generation (the CPU check)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--train-clips-per-class", type=int, default=10)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--pytest-args", default=shlex.join(DEFAULT_PYTEST_ARGS),
                    help="one string, split like a shell would (default: %(default)s)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds for each subprocess (ddp, pytest)")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU without CUDA (with a tiny --model)")
    args = ap.parse_args(argv)
    import torch

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available() and not args.allow_cpu:
        msg = "gpu_report skipped: CUDA is not available (--allow-cpu with --model models/tiny_test.yaml runs a CPU check)"
        print(msg)
        args.out.write_text(json.dumps({"skipped": msg}, indent=2))
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    report = run(args.model, args.sections, args.dtypes, args.batches, args.faces, args.compile_modes,
                 args.compile_backend, args.steps, args.warmup, args.train_clips_per_class, args.train_batch,
                 shlex.split(args.pytest_args), args.timeout)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out} ({len(report['sections'])} sections, {len(report['errors'])} failed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
