"""How often the published label changes, and how labels are distributed, in ``dfer eval`` prediction files.

    dfer eval label-stats preds.jsonl [more.jsonl ...]

For each file: the share of face records per published label (``expression``, after the pipeline's smoothing
and hysteresis when aggregation is on) and per frame's own top label (``frame_expression``), and label flips
per 100 records of a face (a flip = the label differs from the same face's previous record). Flicker is what
users of expression nodes complain about most; this is the number that shows it.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable


def flips_per_100(records: Iterable[dict], key: str = "expression") -> float:
    """Label changes per 100 consecutive records of the same face (records without the label are skipped)."""
    by_face: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.get(key):
            by_face[record["face_id"]].append(record[key])
    flips = sum(a != b for labels in by_face.values() for a, b in zip(labels, labels[1:]))
    steps = sum(max(len(labels) - 1, 0) for labels in by_face.values())
    return 100.0 * flips / steps if steps else 0.0


def distribution(records: Iterable[dict], key: str = "expression") -> dict[str, float]:
    """Share of records per label, largest first."""
    counts = Counter(r[key] for r in records if r.get(key))
    total = sum(counts.values())
    return {label: n / total for label, n in counts.most_common()} if total else {}


def summarise_file(path: Path) -> dict:
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {"file": str(path), "records": len(records),
            "published": distribution(records), "per_frame": distribution(records, "frame_expression"),
            "flips_per_100_published": flips_per_100(records),
            "flips_per_100_per_frame": flips_per_100(records, "frame_expression")}


if __name__ == "__main__":  # the command line: dfer_ros/cli/label_stats.py
    from dfer_ros.commands import exec_cli

    exec_cli("label_stats", "dfer eval label-stats")
