"""dfer eval against the ``fer`` package, whole process, side by side: the time a Python user waits for a video.

    dfer bench fer_compare [--video PATH] [--repeats 3] [--fer-python .fer-venv/bin/python]

``fer`` (PyPI, MIT; TensorFlow, its default Haar face detector and its FER2013 mini-Xception) is what most Python
users reach for to read expressions from a video. It needs TensorFlow, which this project's environment does not
carry, so it runs from a virtual environment of its own; without one this prints how to make it and times dfer eval
alone. Both processes are started in turn ``--repeats`` times on the same video (400x300 webcam video cap12 by
default); each is timed as a whole (interpreter start, imports, model loading, every frame) and reports when its
first frame's result was ready. Not a test: it prints and writes numbers, with the load average beside them.

A fer environment (about 1 GB; its own OpenCV, no PyTorch: fer's MTCNN detector is not used):
    python3.11 -m venv .fer-venv
    .fer-venv/bin/pip install tensorflow-cpu==2.20.0 opencv-python-headless==4.12.0.88 requests pillow setuptools
    .fer-venv/bin/pip install --no-deps fer==25.10.3
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from dfer_ros.assets import REPO_ROOT

FER_SCRIPT = r"""
import sys, time, json
t_start = time.time()
import cv2
from fer.fer import FER  # the package root exports nothing in 25.10
detector = FER(mtcnn=False)  # fer's default: OpenCV's Haar cascade
capture = cv2.VideoCapture(sys.argv[1])
frames = faces = 0
first = None
while True:
    ok, frame = capture.read()
    if not ok:
        break
    faces += len(detector.detect_emotions(frame))
    frames += 1
    if first is None:
        first = time.time()
print(json.dumps({"frames": frames, "faces": faces, "first_result_after_start_s": first - t_start}))
"""


def default_fer_python() -> Optional[Path]:
    candidate = Path(os.environ.get("DFER_FER_PYTHON", REPO_ROOT / ".fer-venv" / "bin" / "python"))
    return candidate if candidate.is_file() else None


def _time(cmd: list[str], env: Optional[dict] = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} ... exited with {proc.returncode}: {proc.stderr[-1500:]}")
    return wall, proc.stdout


def run(video: Optional[Path] = None, repeats: int = 3, fer_python: Optional[Path] = None,
        progress: Callable[[str], None] = print) -> dict:
    from dfer_ros.assets import sample_video

    video = Path(video or sample_video())
    fer_python = fer_python or default_fer_python()
    if fer_python is None:
        progress("fer_compare: no fer environment (.fer-venv, or DFER_FER_PYTHON): timing dfer eval alone; see "
                 "dfer bench fer_compare --help for how to make one")
    rows = {"dfer": [], "fer": []}
    with tempfile.TemporaryDirectory(prefix="dfer-fer-") as tmp:
        summary = Path(tmp) / "summary.json"
        for i in range(repeats):
            wall, _ = _time([sys.executable, "-m", "dfer_ros.cli.eval", "--video", str(video), "--no-progress",
                             "--summary-json", str(summary)])
            s = json.loads(summary.read_text())
            rows["dfer"].append({"wall_s": wall, "frames": s["frames"], "first_result_s": s["first_result_seconds"],
                                 "load": os.getloadavg()[0]})
            progress(f"  dfer eval run {i + 1}: {wall:.1f} s, {s['frames']} frames, first result after "
                     f"{s['first_result_seconds']:.2f} s, load {os.getloadavg()[0]:.1f}")
            if fer_python is not None:
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
                wall, out = _time([str(fer_python), "-c", FER_SCRIPT, str(video)], env)
                r = json.loads(out.strip().splitlines()[-1])
                rows["fer"].append({"wall_s": wall, "frames": r["frames"],
                                    "first_result_s": r["first_result_after_start_s"], "load": os.getloadavg()[0]})
                progress(f"  fer run {i + 1}: {wall:.1f} s, {r['frames']} frames, first result after "
                         f"{r['first_result_after_start_s']:.2f} s, load {os.getloadavg()[0]:.1f}")
    med = {k: statistics.median(x["wall_s"] for x in v) for k, v in rows.items() if v}
    first = {k: statistics.median(x["first_result_s"] for x in v) for k, v in rows.items() if v}
    result = {"video": str(video), "repeats": repeats, "runs": rows, "median_wall_s": med, "median_first_result_s": first,
              "ratio_dfer_to_fer": med["dfer"] / med["fer"] if "fer" in med else None}
    progress(f"fer_compare: median whole process dfer eval {med['dfer']:.1f} s"
             + (f", fer {med['fer']:.1f} s: {result['ratio_dfer_to_fer']:.2f}x fer's time" if "fer" in med else "")
             + f"; first result after {first['dfer']:.2f} s" + (f" (fer {first['fer']:.2f} s)" if "fer" in first else ""))
    return result


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_fer_compare.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_fer_compare", "dfer bench fer_compare")
