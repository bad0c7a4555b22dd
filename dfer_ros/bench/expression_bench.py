"""Old vs new default expression net in one run: per-face ms of each net, and pipeline fps at 640x480.

    dfer bench expression [--frames 60] [--repeats 200]

Both nets are timed in the same process, interleaved (one call of each in turn), so the load of a shared
machine falls on both alike and the ratio is meaningful even when the absolute numbers are noisy:

  net        ms per face of the expression net alone (ONNX Runtime, 1 intra-op thread) on real aligned
             crops (the astronaut), batch 1 and batch 4: median and best over ``repeats`` calls
  pipeline   ``perception_bench.run_scenario`` on the real webcam video at 640x480 with 1 and 4 faces,
             model ``default`` (face-api net) and ``fer2013`` (mini-Xception), action units as configured
             by default: fps, model-stage ms per frame, faces found

``make bench`` runs it as the suite's ``expression`` section.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

MODELS = ("fer2013", "default")  # old default first, the new one second


def _astronaut_face():
    import skimage.data

    from dfer_ros.perception.types import Detection

    image = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    marks = np.array([[200, 101], [247, 102], [220, 124], [198, 142], [239, 143]], np.float32)
    return image, Detection(np.array([178, 63, 89, 112], np.float32), 0.9, marks)


def time_nets(models: dict, repeats: int = 200, batches: tuple[int, ...] = (1, 4)) -> dict:
    """{model: {"batchB": {"median_ms_per_face", "best_ms_per_face"}}}, the nets' calls interleaved."""
    from dfer_ros.perception.alignment import align_faces

    image, face = _astronaut_face()
    inputs = {}
    for name, model in models.items():
        crop = align_faces(image, [face], model.encoder.crop_spec)
        inputs[name] = model.encoder.expression_crops(crop)
    out: dict = {name: {} for name in models}
    for batch in batches:
        stacks = {name: np.repeat(x, batch, axis=0) for name, x in inputs.items()}
        times: dict[str, list[float]] = {name: [] for name in models}
        for name, model in models.items():  # warm-up
            model.encoder.net.predict(stacks[name])
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model.encoder.net.predict(stacks[name])
                times[name].append((time.perf_counter() - start) * 1000.0 / batch)
        for name in models:
            out[name][f"batch{batch}"] = {"median_ms_per_face": float(np.median(times[name])),
                                          "best_ms_per_face": float(np.min(times[name]))}
    return out


def time_pipelines(models: dict, frames: int = 60, faces: tuple[int, ...] = (1, 4),
                   progress: Callable[[str], None] = print) -> dict:
    """{model: {faces: {"fps", "model_ms", "total_ms", "mean_faces"}}} at 640x480 on the webcam video."""
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import grid_frames, load_frames, run_scenario
    from dfer_ros.perception.config import PipelineConfig

    config = PipelineConfig().validate()
    source = load_frames(sample_video(), frames)
    out: dict = {name: {} for name in models}
    for n in faces:
        grid = grid_frames(source, n, 640, 480)
        for name, model in models.items():  # the two models back to back on the same frames
            res = run_scenario(f"{name} 640x480 {n} face(s)", grid, model, config, n)
            out[name][n] = {"fps": res.fps, "model_ms": res.stage_ms.get("model"), "total_ms": res.total_ms,
                            "mean_faces": res.mean_faces}
            progress(f"  {name:8s} 640x480 {n} face(s): {res.fps:.1f} fps, model {res.stage_ms.get('model', 0):.1f} "
                     f"ms/frame, {res.mean_faces:.2f} faces found")
    return out


def run(frames: int = 60, repeats: int = 200, backend: str = "onnxruntime",
        progress: Callable[[str], None] = print) -> dict:
    from dfer_ros.estimators.factory import create_model

    models = {name: create_model(name, backend=backend) for name in MODELS}
    try:
        nets = time_nets(models, repeats)
        for name in MODELS:
            for batch, row in nets[name].items():
                progress(f"  {name:8s} expression net {batch}: {row['median_ms_per_face']:.3f} ms/face median, "
                         f"{row['best_ms_per_face']:.3f} best")
        pipelines = time_pipelines(models, frames, progress=progress)
    finally:
        for model in models.values():
            model.close()
    old, new = MODELS
    ratios = {f"net_{b}_new_over_old": nets[new][b]["median_ms_per_face"] / nets[old][b]["median_ms_per_face"]
              for b in nets[new]}
    ratios.update({f"pipeline_fps_{n}faces_new_over_old": pipelines[new][n]["fps"] / pipelines[old][n]["fps"]
                   for n in pipelines[new]})
    return {"models": {name: models[name].name for name in MODELS}, "backend": backend, "frames": frames,
            "repeats": repeats, "net_ms": nets, "pipeline": pipelines, "ratios": ratios}


def markdown(res: dict) -> list[str]:
    old, new = MODELS
    lines = [f"Expression net, old ({old}) vs new ({new}) default, one run ({res['backend']}; "
             "median ms per face, best in brackets; pipeline at 640x480 on the webcam video)", "",
             "| | " + " | ".join(MODELS) + " | new/old |", "|---|---|---|---|"]
    for b in res["net_ms"][new]:
        o, n = res["net_ms"][old][b], res["net_ms"][new][b]
        lines.append(f"| net ms/face, {b} | {o['median_ms_per_face']:.2f} ({o['best_ms_per_face']:.2f}) | "
                     f"{n['median_ms_per_face']:.2f} ({n['best_ms_per_face']:.2f}) | "
                     f"{res['ratios'][f'net_{b}_new_over_old']:.2f} |")
    for faces in res["pipeline"][new]:
        o, n = res["pipeline"][old][faces], res["pipeline"][new][faces]
        lines.append(f"| pipeline fps, {faces} face(s) (model ms/frame) | {o['fps']:.1f} ({o['model_ms']:.1f}) | "
                     f"{n['fps']:.1f} ({n['model_ms']:.1f}) | "
                     f"{res['ratios'][f'pipeline_fps_{faces}faces_new_over_old']:.2f} |")
    return lines + [""]


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_expression.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_expression", "dfer bench expression")
