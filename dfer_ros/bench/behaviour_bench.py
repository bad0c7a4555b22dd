"""What the behaviour outputs cost: pipeline fps with face quality + expression events on vs off.

    dfer bench behaviour [--frames 150] [--repeats 3] [--out out/behaviour_bench.json]

Both settings run on the same frames of the real webcam video cap12 (1 face at 400x300, and a 2x2 grid
of it at 640x480, 4 faces) in one process, as two pipelines fed frame by frame in turns (which one goes
first alternates), so a load spike of a shared machine falls on both alike; fps = frames / summed
``process`` time of each, over ``repeats`` passes, and their ratio is reported (target: on within 5 % of
off), with the quality stage's own ms per frame. Also in ``dfer bench`` (section ``behaviour``).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from dfer_ros.perception.config import PipelineConfig


def configs() -> dict[str, PipelineConfig]:
    on = PipelineConfig().validate()
    off = PipelineConfig().validate()
    off.quality.enabled = False
    off.events.enabled = False
    return {"on": on, "off": off}


def run(frames: int = 150, repeats: int = 3, model_name: str = "default", backend: str = "onnxruntime",
        checkpoint: Optional[str] = None, progress: Callable[[str], None] = print) -> dict:
    from tqdm import tqdm

    from dfer_ros.assets import sample_video
    import cv2

    from dfer_ros.bench.perception_bench import load_frames, tile2x2
    from dfer_ros.perception.pipeline import PerceptionPipeline
    from dfer_ros.estimators.loader import load_model

    model = load_model(model_name, backend, checkpoint)
    source = load_frames(sample_video(), frames)
    tiled = [tile2x2(cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA)) for f in source]
    scenes = {"cap12 400x300 1 face": (source, 1), "640x480 2x2 4 faces": (tiled, 4)}
    rows = []
    for scene, (scene_frames, faces) in scenes.items():
        pipes = {mode: PerceptionPipeline(config, model) for mode, config in configs().items()}
        seconds = {"on": 0.0, "off": 0.0}
        quality_ms, events, processed = 0.0, 0, 0
        for mode, pipe in pipes.items():  # warm-up (lazy inits) outside the timing
            pipe.process(scene_frames[0], -1.0)
            pipe.reset()
        for rep in range(repeats):
            for i, frame in enumerate(tqdm(scene_frames, desc=f"{scene} pass {rep + 1}", unit="frame", leave=False)):
                stamp = rep * 1000.0 + i / 25.0
                order = ("on", "off") if (i + rep) % 2 == 0 else ("off", "on")
                for mode in order:
                    t = time.perf_counter()
                    result = pipes[mode].process(frame, stamp)
                    seconds[mode] += time.perf_counter() - t
                    if mode == "on":
                        quality_ms += result.timings_ms.get("quality", 0.0)
                        events += len(result.events)
                processed += 1
        for pipe in pipes.values():
            pipe.close()
        on, off = processed / seconds["on"], processed / seconds["off"]
        row = {"scene": scene, "faces": faces, "frames": len(scene_frames), "repeats": repeats,
               "fps_on": round(on, 2), "fps_off": round(off, 2), "ratio_on_off": round(on / off, 4),
               "quality_ms_per_frame": round(quality_ms / processed, 3), "events": events}
        rows.append(row)
        progress(f"  {scene}: {on:.1f} fps with quality+events, {off:.1f} fps without (ratio {on / off:.3f}; "
                 f"quality {row['quality_ms_per_frame']:.2f} ms/frame)")
    return {"model": model.name, "backend": model.backend, "scenes": rows}


def markdown(section: dict) -> str:
    lines = [f"Behaviour outputs (face quality + expression events) on vs off ({section['model']}, two pipelines "
             "fed the same frames in turns)", "", "| scene | frames x runs | fps on | fps off | on / off | quality ms/frame |",
             "|---|---|---|---|---|---|"]
    for r in section["scenes"]:
        lines.append(f"| {r['scene']} | {r['frames']} x {r['repeats']} | {r['fps_on']:.1f} | {r['fps_off']:.1f} | "
                     f"{r['ratio_on_off']:.3f} | {r['quality_ms_per_frame']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_behaviour.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_behaviour", "dfer bench behaviour")
