"""``dfer bench behaviour``: pipeline fps with face quality + expression events on vs off, same
frames in turns (``dfer_ros.bench.behaviour_bench``). Not a test: it prints and writes numbers."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer bench behaviour",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames of the webcam video")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames")
    parser.add_argument("--out", type=Path, default=Path("out/behaviour_bench.json"), help="JSON report")
    args = parser.parse_args(argv)
    from dfer_ros.bench.behaviour_bench import markdown, run

    result = run(args.frames, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
