"""``dfer bench streaming``: streaming (one crop per frame + head over cached embeddings) versus re-encoding
the whole clip, for a CLIP-adapter config (``dfer_ros.bench.streaming_bench``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.bench.streaming_bench import REPO_MODELS, run
from dfer_ros.deprecation import add_deprecated_flag


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="dfer bench streaming", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(REPO_MODELS / "clip_vitb16_abaw.yaml"),
                   help="CLIP-adapter model config YAML (weights ignored)")
    add_deprecated_flag(p, "--config", "--model", "model")
    p.add_argument("--steps", type=int, default=6, help="streaming steps to time on CPU")
    p.add_argument("--reencode-steps", type=int, default=2, help="re-encoding steps to time on CPU (interleaved)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: stable numbers on shared cores; 0: torch default)")
    p.add_argument("--out", help="also write the numbers to this JSON file")
    add_deprecated_flag(p, "--json", "--out", "out")
    args = p.parse_args(argv)
    result = run(Path(args.model), args.steps, args.reencode_steps, args.threads)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
