"""Streaming vs re-encoding benchmark for the CLIP-adapter model (not a test: it prints numbers).

    dfer bench streaming [--model models/clip_vitb16_abaw.yaml] [--steps 8] [--out out.json]

CPU section: a ViT-B/16-sized model with random weights (no download needed). Each step is one new
camera frame of one tracked face:
  * streaming: encode the new crop once, run the head over the cached 16-frame window;
  * re-encoding (what clip-based DFER models do): encode all 16 crops of the window, then the head.
Reports ms per step, steps per second and the throughput ratio (target >= 10x).
GPU section (only with CUDA): torch fp16, 1/4/8 faces per frame, ms per frame for both ways.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def _timeit(fn, steps: int, sync=lambda: None) -> list[float]:
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _clocked(fn) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one call. CPU time is what the step costs even when other
    processes share the cores; wall time is what a dedicated robot computer would see."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def run(config: Path, steps: int, reencode_steps: int, threads: int, log=print) -> dict:
    import torch
    from tqdm import tqdm

    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.clip_adapter.model import ClipAdapterModel

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(config)
    cfg.clip_weights = None  # random weights: same cost as the real tower
    model = ClipAdapterModel(cfg).eval()
    s, w = cfg.image_size, cfg.window
    log(f"model {cfg.name}: {model.num_parameters / 1e6:.1f} M parameters, window {w}, image {s}x{s}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    result = {"config": str(config), "window": w, "image_size": s, "threads": torch.get_num_threads()}

    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(w + steps + 1, 3, s, s, generator=gen)
    stream, reenc, head = [], [], []
    with torch.inference_mode():
        cache = list(model.encode_frames(frames[:w]))  # warm-up and a full window of cached embeddings
        model.forward_head(torch.stack(cache)[None])
        every = max(1, steps // max(1, reencode_steps))
        # interleaved so both ways see the same machine load
        for i in tqdm(range(w, w + steps), desc="steps", leave=False):
            def streaming_step(i=i):
                cache.append(model.encode_frames(frames[i:i + 1])[0])
                del cache[:-w]
                model.forward_head(torch.stack(cache)[None])

            stream.append(_clocked(streaming_step))
            head.append(_clocked(lambda: model.forward_head(torch.stack(cache)[None])))
            if (i - w) % every == 0 and len(reenc) < reencode_steps:
                reenc.append(_clocked(lambda i=i: model(frames[i - w + 1:i + 1][None])))

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    cpu = {"streaming_ms_per_step": med(stream, 0), "reencode_ms_per_step": med(reenc, 0),
           "head_ms": med(head, 0), "streaming_cpu_ms_per_step": med(stream, 1),
           "reencode_cpu_ms_per_step": med(reenc, 1)}
    cpu["streaming_steps_per_s"] = 1000.0 / cpu["streaming_ms_per_step"]
    cpu["reencode_steps_per_s"] = 1000.0 / cpu["reencode_ms_per_step"]
    cpu["throughput_ratio"] = cpu["streaming_steps_per_s"] / cpu["reencode_steps_per_s"]
    cpu["throughput_ratio_cpu_time"] = cpu["reencode_cpu_ms_per_step"] / cpu["streaming_cpu_ms_per_step"]
    result["cpu"] = cpu
    log(f"CPU, 1 face, median over {len(stream)} streaming / {len(reenc)} re-encoding steps (wall ms | CPU ms):")
    log(f"  streaming  (1 crop encoded + head over cached window): {cpu['streaming_ms_per_step']:9.1f} | "
        f"{cpu['streaming_cpu_ms_per_step']:9.1f} ms/step ({cpu['streaming_steps_per_s']:.2f} steps/s; "
        f"head alone {cpu['head_ms']:.2f} ms)")
    log(f"  re-encoding ({w} crops encoded + head):                 {cpu['reencode_ms_per_step']:9.1f} | "
        f"{cpu['reencode_cpu_ms_per_step']:9.1f} ms/step ({cpu['reencode_steps_per_s']:.3f} steps/s)")
    log(f"  throughput ratio streaming / re-encoding: {cpu['throughput_ratio']:.1f}x wall, "
        f"{cpu['throughput_ratio_cpu_time']:.1f}x CPU time (target >= 10x)")
    result["gpu"] = gpu_section(model, cfg, log)
    return result


def gpu_section(model, cfg, log, steps: int = 30) -> Optional[dict]:
    import torch

    if not torch.cuda.is_available():
        log("GPU section skipped: CUDA is not available on this machine")
        return None
    model = model.to("cuda").half().eval()
    s, w = cfg.image_size, cfg.window
    sync = torch.cuda.synchronize
    out = {"device": torch.cuda.get_device_name(0), "dtype": "float16", "faces": {}}
    log(f"GPU {out['device']}, torch fp16, median over {steps} frames:")
    with torch.inference_mode():
        for faces in (1, 4, 8):
            crops = torch.randn(faces, 3, s, s, device="cuda", dtype=torch.half)
            cached = torch.randn(faces, w, cfg.embedding_dim, device="cuda", dtype=torch.half)
            clips = torch.randn(faces, w, 3, s, s, device="cuda", dtype=torch.half)
            for _ in range(3):  # warm-up (kernel selection)
                model.encode_frames(crops)
                model.forward_head(cached)
                model(clips)
            stream = _timeit(lambda: (model.encode_frames(crops), model.forward_head(cached)), steps, sync)
            reenc = _timeit(lambda: model(clips), max(3, steps // 3), sync)
            row = {"streaming_ms_per_frame": statistics.median(stream), "reencode_ms_per_frame": statistics.median(reenc)}
            out["faces"][faces] = row
            log(f"  {faces} face(s): streaming {row['streaming_ms_per_frame']:7.2f} ms/frame, "
                f"re-encoding {row['reencode_ms_per_frame']:7.2f} ms/frame")
    return out
