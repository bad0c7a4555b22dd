"""``dfer bench``: the benchmark suite (what ``make bench`` runs); numbers to JSON, a markdown table printed.

    dfer bench --out bench.json [--quick] [--frames N] [--latency-seconds S] [--no-gpu] [--model default]
    dfer bench SECTION [SECTION ...] --out bench.json [suite flags]   # the suite, only these sections
    dfer bench SECTION [its own flags]                                # one benchmark alone: dfer bench crowd --help

Every benchmark is a section (``SECTION_COMMANDS``). One section that has a command of its own runs that command
with its own flags (``dfer bench crowd --faces 1 4``); several sections, or a section only the suite has, run the
suite with those sections. See ``dfer_ros.bench.suite`` for what each suite section measures. Not a test: it
prints and writes numbers.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

# the suite's sections; soak, soak_offline, startup_signals, oversized_images, brief_faces, detector_memory and hri run
# only when named: they take minutes
SECTIONS = ("throughput", "crowd", "expression", "behaviour", "streaming", "latency", "reid", "soak", "soak_offline",
            "startup_signals", "oversized_images", "brief_faces", "loaded", "detector_memory", "hri", "gpu")
# every benchmark by section name -> the CLI function that runs it alone with its own flags ("" = the suite only)
SECTION_COMMANDS = {
    "throughput": "dfer_ros.cli.bench_perception:main",
    "crowd": "dfer_ros.cli.bench_crowd:main",
    "brief_faces": "dfer_ros.cli.bench_brief_faces:main",
    "freshness": "dfer_ros.cli.bench_freshness:main",
    "quality": "dfer_ros.cli.bench_quality:main",
    "hri": "dfer_ros.cli.bench_hri:main",
    "detector": "dfer_ros.cli.bench_detector:main",
    "detector_memory": "",
    "expression": "dfer_ros.cli.bench_expression:main",
    "default_model": "dfer_ros.cli.bench_default_model:main",
    "behaviour": "dfer_ros.cli.bench_behaviour:main",
    "soak": "dfer_ros.cli.bench_soak:main",
    "soak_offline": "",
    "startup_signals": "",
    "oversized_images": "",
    "latency": "dfer_ros.cli.bench_latency:main",
    "loaded": "dfer_ros.cli.bench_loaded:main",
    "reid": "dfer_ros.cli.bench_reid:main",
    "streaming": "dfer_ros.cli.bench_streaming:main",
    "training": "dfer_ros.cli.bench_training:main",
    "fer_compare": "dfer_ros.cli.bench_fer_compare:main",
    "gpu": "dfer_ros.cli.gpu_report:main",
}
SECTION_NAMES = tuple(SECTION_COMMANDS)


def dispatch(argv: Optional[Sequence[str]] = None) -> int:
    """``dfer bench [SECTION ...] [flags]``: one section with a command of its own runs that command with the rest
    of the arguments; otherwise the suite runs, with the named sections (if any) as ``--sections``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    named = []
    while argv and argv[0] in SECTION_COMMANDS:
        named.append(argv.pop(0))
    if len(named) == 1 and SECTION_COMMANDS[named[0]]:
        from dfer_ros.cli.options import load_target

        return load_target(SECTION_COMMANDS[named[0]])(argv)
    alone = [name for name in named if name not in SECTIONS]
    if alone:
        print(f"dfer bench: error: {', '.join(alone)} run(s) only alone (dfer bench {alone[0]} --help); the suite's "
              f"sections are {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    return main(argv + (["--sections", *named] if named else []))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="sections, each alone with its own flags (dfer bench SECTION --help): "
                                            + ", ".join(SECTION_NAMES))
    parser.add_argument("--out", type=Path, required=True, help="JSON file for all numbers")
    parser.add_argument("--quick", action="store_true", help="smoke run: few frames, tiny model, no latency run")
    parser.add_argument("--frames", type=int, help="frames per throughput scenario")
    parser.add_argument("--faces", type=int, nargs="+", choices=(1, 2, 4, 8), help="face counts (default 1 2 4 8)")
    parser.add_argument("--crowd-faces", type=int, nargs="+", help="face counts of the crowd section (default 1 4 10 25 50)")
    parser.add_argument("--crowd-seconds", type=float, help="measured seconds per crowd scene and mode (default 6)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="sections to run (default: all)")
    parser.add_argument("--soak-frames", type=int, help="frames of the soak section (default 30000; run it with "
                                                         "--sections soak)")
    parser.add_argument("--detector-memory-calls", type=int, help="calls per detector of the detector_memory "
                                                                   "section (default 100000; run it with "
                                                                   "--sections detector_memory)")
    parser.add_argument("--latency-seconds", type=float, help="measured seconds of the node latency run (0: skip)")
    parser.add_argument("--streaming-config", type=Path, help="CLIP-adapter config of the streaming section")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    parser.add_argument("--model", help="model of the throughput and latency sections: a registered name, a "
                                        "dfer export folder or a config YAML (default: default)")
    parser.add_argument("--checkpoint", help="training checkpoint for a config YAML --model (torch backend)")
    parser.add_argument("--backend", help="backend of the throughput and latency sections (default: onnxruntime)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from dfer_ros.bench.suite import SuiteConfig, markdown, run_suite, save

    cfg = SuiteConfig.quick() if args.quick else SuiteConfig()
    if args.frames is not None:
        if args.frames < 1:
            parser.error("--frames must be >= 1")
        cfg.frames = args.frames
    if args.faces:
        cfg.faces = tuple(sorted(set(args.faces)))
    if args.sections:
        cfg.sections = tuple(args.sections)
    if args.crowd_faces:
        if min(args.crowd_faces) < 1:
            parser.error("--crowd-faces must be >= 1")
        cfg.crowd_faces = tuple(sorted(set(args.crowd_faces)))
    if args.crowd_seconds is not None:
        if args.crowd_seconds <= 0:
            parser.error("--crowd-seconds must be > 0")
        cfg.crowd_seconds = args.crowd_seconds
    if args.soak_frames is not None:
        if args.soak_frames < 2:
            parser.error("--soak-frames must be >= 2")
        cfg.soak_frames = args.soak_frames
    if args.detector_memory_calls is not None:
        if args.detector_memory_calls < 2000:
            parser.error("--detector-memory-calls must be >= 2000 (1,000 warm-up calls, then the slope)")
        cfg.detector_memory_calls = args.detector_memory_calls
    if args.latency_seconds is not None:
        cfg.latency_seconds = args.latency_seconds
    if args.streaming_config is not None:
        if not args.streaming_config.is_file():
            parser.error(f"--streaming-config {args.streaming_config}: no such file")
        cfg.streaming_config = args.streaming_config
    if args.no_gpu:
        cfg.gpu = False
    if args.model:
        from dfer_ros.estimators.loader import parse_model_spec

        try:
            parse_model_spec(args.model, args.checkpoint)  # fail fast on a missing path, before any section runs
        except (ValueError, FileNotFoundError) as exc:
            parser.error(str(exc))
        cfg.model = args.model
        cfg.checkpoint = args.checkpoint
    if args.backend:
        cfg.backend = args.backend
    t0 = time.perf_counter()
    result = run_suite(cfg, progress=lambda line: print(line, flush=True))
    save(result, args.out)
    print()
    print(markdown(result))
    print(f"\nwrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
