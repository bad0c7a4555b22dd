"""``dfer bench soak``: node RSS over a long run with faces entering and leaving (``dfer_ros.bench.soak_bench``).

    dfer bench soak --frames 30000 [--warmup 2000] [--sample-every 500] [--param NAME:=VALUE] [--competitors N]
                    [--out soak.json]
    dfer bench soak --offline --frames 30000 [--trim-every N] ...   (the same frames through an in-process
                    pipeline, as dfer eval; its CPU time per frame too)
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="dfer bench soak", description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=30000, help="frames fed to the node (default 30000)")
    p.add_argument("--warmup", type=int, default=2000, help="frames before the slope is measured (default 2000)")
    p.add_argument("--sample-every", type=int, default=500, help="frames between RSS samples (default 500)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="node parameter, e.g. --param detection.detector:=haar (repeatable)")
    p.add_argument("--competitors", type=int, default=0,
                   help="busy processes (one core each) beside the node for the whole run (default 0)")
    p.add_argument("--offline", action="store_true",
                   help="no node: an in-process pipeline (what dfer eval runs), this process's RSS")
    p.add_argument("--trim-every", type=int, default=0, metavar="N",
                   help="with --offline: give the heap's free pages back (malloc_trim) every N frames (default: never)")
    p.add_argument("--out", type=Path, help="JSON report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.frames < 2 or args.sample_every < 1 or args.warmup < 0 or args.competitors < 0:
        p.error("--frames must be >= 2, --sample-every >= 1, --warmup >= 0, --competitors >= 0")
    if any(":=" not in item for item in args.param):
        p.error("--param takes NAME:=VALUE")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from dfer_ros.bench.soak_bench import run, run_offline, summary_lines

    if args.offline and (args.param or args.competitors):
        p.error("--param and --competitors are for the node; --offline runs the default pipeline")
    if args.trim_every < 0 or (args.trim_every and not args.offline):
        p.error("--trim-every takes N >= 0 and goes with --offline (the node trims by itself)")
    if args.offline:
        report = run_offline(args.frames, args.warmup, args.sample_every,
                             progress=lambda line: print(line, flush=True), progress_bar=not args.no_progress,
                             trim_every=args.trim_every)
    else:
        params = dict(item.split(":=", 1) for item in args.param)
        report = run(args.frames, args.warmup, args.sample_every, node_params=params,
                     progress=lambda line: print(line, flush=True), progress_bar=not args.no_progress,
                     competitors=args.competitors)
    for line in summary_lines(report):
        print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asdict(report), indent=2) + "\n")
        print(f"soak: report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
