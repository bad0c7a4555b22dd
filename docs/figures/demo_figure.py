#!/usr/bin/env python3
"""The README's picture from the output of `make demo`: one annotated frame beside the timeline.

    .venv/bin/python docs/figures/demo_figure.py [out/demo] [docs/figures/demo.png]

The frame is the one at the apex of the strongest expression episode (events.jsonl), found in annotated.mp4
by its stamp relative to the first message (messages.jsonl) at the video's frame rate. A repository tool,
not part of the package.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np


def apex_frame(demo: Path) -> np.ndarray:
    with open(demo / "messages.jsonl") as handle:
        t0 = json.loads(handle.readline())["stamp"]
    events = [json.loads(line) for line in (demo / "events.jsonl").read_text().splitlines() if line.strip()]
    if not events:
        raise SystemExit(f"{demo / 'events.jsonl'}: no expression event to show")
    apex = max(events, key=lambda e: e["peak_probability"])["apex"]
    video = cv2.VideoCapture(str(demo / "annotated.mp4"))
    index = max(0, round((apex - t0) * (video.get(cv2.CAP_PROP_FPS) or 25.0)))
    video.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = video.read()
    video.release()
    if not ok:
        raise SystemExit(f"{demo / 'annotated.mp4'}: cannot read frame {index}")
    return frame


def main(argv: list[str]) -> int:
    demo = Path(argv[0] if argv else "out/demo")
    out = Path(argv[1] if len(argv) > 1 else "docs/figures/demo.png")
    frame = apex_frame(demo)
    timeline = cv2.imread(str(demo / "timeline.png"))
    if timeline is None:
        raise SystemExit(f"{demo / 'timeline.png'}: cannot read")
    height = 450
    frame = cv2.resize(frame, (round(frame.shape[1] * height / frame.shape[0]), height), interpolation=cv2.INTER_AREA)
    timeline = cv2.resize(timeline, (round(timeline.shape[1] * height / timeline.shape[0]), height),
                          interpolation=cv2.INTER_AREA)
    gap = np.full((height, 12, 3), 255, np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.hstack([frame, gap, timeline]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
