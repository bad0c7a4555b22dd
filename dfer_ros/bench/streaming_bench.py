"""Streaming vs re-encoding benchmark for the CLIP-adapter model (not a test: it prints numbers).

    python -m dfer_ros.bench.streaming_bench [--config models/clip_vitb16_abaw.yaml] [--steps 8] [--json out.json]

CPU section: a ViT-B/16-sized model with random weights (no download needed). Each step is one new
camera frame of one tracked face:
  * streaming: encode the new crop once, run the head over the cached 16-frame window;
  * re-encoding (what clip-based DFER models do): encode all 16 crops of the window, then the head.
Reports ms per step, steps per second and the throughput ratio (target >= 10x).
GPU section (only with CUDA): torch fp16, 1/4/8 faces per frame, ms per frame for both ways.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

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
    s, w, d = cfg.image_size, cfg.window, cfg.embedding_dim
    log(f"model {cfg.name}: {model.num_parameters / 1e6:.1f} M parameters, window {w}, image {s}x{s}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    result = {"config": str(config), "window": w, "image_size": s, "threads": torch.get_num_threads()}

    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(w + steps + 2, 3, s, s, generator=gen)
    with torch.inference_mode():
        cache = [e for e in model.encode_frames(frames[:w])]  # warm-up and a full window of cached embeddings
        model.forward_head(torch.stack(cache[-w:])[None])
        position = [w]

        def streaming_step():
            i = position[0]
            cache.append(model.encode_frames(frames[i:i + 1])[0])
            del cache[:-w]
            model.forward_head(torch.stack(cache)[None])
            position[0] = i + 1

        def reencode_step():
            i = position[0]
            model(frames[i - w + 1:i + 1][None])

        stream_ms = [t for t in tqdm(_timeit(streaming_step, steps), desc="streaming", leave=False)]
        position[0] = w
        reencode_ms = _timeit(reencode_step, reencode_steps)
        head_ms = _timeit(lambda: model.forward_head(torch.stack(cache)[None]), steps)

    cpu = {"streaming_ms_per_step": statistics.median(stream_ms), "reencode_ms_per_step": statistics.median(reencode_ms),
           "head_ms": statistics.median(head_ms)}
    cpu["streaming_steps_per_s"] = 1000.0 / cpu["streaming_ms_per_step"]
    cpu["reencode_steps_per_s"] = 1000.0 / cpu["reencode_ms_per_step"]
    cpu["throughput_ratio"] = cpu["streaming_steps_per_s"] / cpu["reencode_steps_per_s"]
    result["cpu"] = cpu
    log(f"CPU, 1 face, median over {steps} / {reencode_steps} steps:")
    log(f"  streaming  (1 crop encoded + head over cached window): {cpu['streaming_ms_per_step']:9.1f} ms/step "
        f"({cpu['streaming_steps_per_s']:.2f} steps/s; head alone {cpu['head_ms']:.2f} ms)")
    log(f"  re-encoding ({w} crops encoded + head):                 {cpu['reencode_ms_per_step']:9.1f} ms/step "
        f"({cpu['reencode_steps_per_s']:.2f} steps/s)")
    log(f"  throughput ratio streaming / re-encoding: {cpu['throughput_ratio']:.1f}x (target >= 10x)")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dfer_ros.bench.streaming_bench", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO_MODELS / "clip_vitb16_abaw.yaml"), help="model config (weights ignored)")
    p.add_argument("--steps", type=int, default=8, help="streaming steps to time on CPU")
    p.add_argument("--reencode-steps", type=int, default=3, help="re-encoding steps to time on CPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    result = run(Path(args.config), args.steps, args.reencode_steps, args.threads)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
