"""The node on a busy robot: dfer_node over DDS at 30 Hz beside one busy competitor per core, an empty room and 1,
4 and 25 faces.

    dfer bench loaded [--faces 0 1 4 25] [--seconds 10] [--out out/loaded.json]

On a robot the node shares the CPU with navigation, SLAM, speech and planning. Each scene runs the latency
benchmark (``latency_bench.run``: 640x480 frames of the webcam video, 1 face or a grid of copies, published at
30 Hz from this process, the node a subprocess; 0 faces: the video's background, a room nobody is in) twice in one run: on the machine as it is, and beside
``os.cpu_count()`` busy loops. Per run: output rate (results per second), p99 latency, the slowest expression and
action-unit estimate ages the node published (the refresh limits: ``compute.expression_max_age`` 0.5 s and
``compute.action_units_max_age`` 2 s), the node's CPU as a share of one core, and per thread. Not a test: it prints
and writes numbers; the load average is recorded with each run.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

FACES = (0, 1, 4, 25)


def run(faces: Sequence[int] = FACES, seconds: float = 10.0, warmup: float = 3.0,
        progress: Callable[[str], None] = print, node_params: Sequence[str] = ()) -> dict:
    from dfer_ros.bench.latency_bench import run as latency_run

    rows = []
    with tempfile.TemporaryDirectory(prefix="dfer-loaded-") as tmp:
        for n in faces:
            for competitors in (0, os.cpu_count() or 1):
                report = latency_run(Path(tmp) / f"{n}-{competitors}.json", seconds, warmup, faces=n,
                                     competitors=competitors, node_params=node_params)
                row = {k: report.get(k) for k in ("faces", "competitors", "load_average", "output_hz",
                                                  "result_fraction", "latency_ms", "expression_age_s",
                                                  "action_units_age_s", "node_cpu_share_of_core", "node_cpu_by_thread",
                                                  "faces_per_result")}
                rows.append(row)
                progress(f"  {n:>2} faces, {competitors} competitors: {row['output_hz']} Hz, p99 "
                         f"{(row['latency_ms'] or {}).get('p99')} ms, expression age max "
                         f"{(row['expression_age_s'] or {}).get('max')} s, AU age max "
                         f"{(row['action_units_age_s'] or {}).get('max')} s, node CPU {row['node_cpu_share_of_core']} "
                         f"of a core, load {row['load_average']}")
    return {"cpus": os.cpu_count(), "seconds": seconds, "node_params": list(node_params), "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| faces | competitors | out Hz | answered | p99 ms | expression age mean / max s | AU age max s | "
             "node CPU (share of a core) | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        e, a = r.get("expression_age_s") or {}, r.get("action_units_age_s") or {}
        lines.append(f"| {r['faces']} | {r['competitors']} | {r['output_hz']} | {r['result_fraction']} | "
                     f"{(r.get('latency_ms') or {}).get('p99')} | {e.get('mean')} / {e.get('max')} | {a.get('max')} | "
                     f"{r['node_cpu_share_of_core']} | {r['load_average']} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_loaded.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_loaded", "dfer bench loaded")
