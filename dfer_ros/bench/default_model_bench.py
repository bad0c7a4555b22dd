"""Per-stage speed of the default model on a real face: expression net per batch size, landmarker, the whole
encoder and the temporal head (``dfer bench default_model [repeats]``).

A benchmark, not a test: it prints median and best milliseconds; docs/default_model.md quotes its output.
"""
from __future__ import annotations

import time

import numpy as np

from dfer_ros.estimators.default_model import build_default_model
from dfer_ros.perception.alignment import align_faces
from dfer_ros.perception.types import Detection


def benchmark(repeats: int = 50, batches: tuple[int, ...] = (1, 4), backend: str = "onnxruntime") -> dict[str, float]:
    """Per-face milliseconds of the expression net (per batch size) and of the landmarker, on real crops.

    Uses the astronaut face (skimage) aligned like the pipeline does; prints median and best (the best is
    the cost without interference from other processes); returns the medians.
    """
    import skimage.data

    model = build_default_model(backend=backend)
    image = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    # the astronaut's 5 landmarks (as YuNet reports them), so the benchmark needs no detector
    marks = np.array([[200, 101], [247, 102], [220, 124], [198, 142], [239, 143]], np.float32)
    face = Detection(np.array([178, 63, 89, 112], np.float32), 0.9, marks)
    crop = align_faces(image, [face], model.encoder.crop_spec)
    results: dict[str, float] = {}

    best: dict[str, float] = {}

    def median_ms(fn, n_faces: int) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000.0 / n_faces)
        best[f"{len(best)}"] = float(np.min(times))
        return float(np.median(times))

    gray = model.encoder.expression_crops(crop)
    for batch in batches:
        stack = np.repeat(gray, batch, axis=0)
        results[f"expression_net_batch{batch}_ms_per_face"] = median_ms(lambda: model.encoder.net.predict(stack), batch)
    if model.encoder.action_units is not None:
        results["landmarker_ms_per_face"] = median_ms(lambda: model.encoder.action_units(crop), 1)
    results["encode_ms_per_face_batch1"] = median_ms(lambda: model.encoder.encode(crop), 1)
    window = np.repeat(model.encoder.encode(crop), model.head.max_frames, axis=0)
    results["head_ms_per_track"] = median_ms(lambda: model.head.predict([window]), 1)
    print(f"{'stage':36s} {'median':>8s} {'best':>8s}")
    for (key, value), fastest in zip(results.items(), best.values()):
        print(f"{key:36s} {value:8.3f} {fastest:8.3f}")
    return results


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_default_model.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_default_model", "dfer bench default_model")
