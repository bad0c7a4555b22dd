"""``dfer eval label-stats preds.jsonl [more.jsonl ...]``: label shares and label flips per
100 records of each ``dfer eval`` prediction file (``dfer_ros.evaluation.label_stats``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def _shares(distribution: dict[str, float]) -> str:
    return ", ".join(f"{label} {100 * share:.1f}%" for label, share in distribution.items())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer eval label-stats",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path, nargs="+", metavar="preds.jsonl", help="dfer eval prediction files")
    args = parser.parse_args(argv)
    from dfer_ros.evaluation.label_stats import summarise_file

    for path in args.files:
        s = summarise_file(path)
        print(f"{s['file']}: {s['records']} records\n  published: {_shares(s['published'])}\n"
              f"  per frame: {_shares(s['per_frame'])}\n  label flips per 100 records: published "
              f"{s['flips_per_100_published']:.2f}, per frame {s['flips_per_100_per_frame']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
