"""Training-step benchmark of a CLIP-adapter model on synthetic clips (not a test: it prints numbers).

    dfer bench training [--model models/clip_vitb16_abaw.yaml] [--batch 8] [--steps 10]

Runs the trainer's step (frozen ViT tower with adapters, temporal head, multi-task loss, AdamW,
fp16 autocast + GradScaler) on random clips already on the GPU, so the number is the model's
training throughput, not the data loader's. Reports clips/s, frames/s, ms per step and peak GPU
memory. Without CUDA it prints a skip line and exits 0, unless --allow-cpu (smoke runs with a tiny
config: ``--config models/tiny_test.yaml --allow-cpu``).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def run(config: Path, batch: int, frames: Optional[int], steps: int, warmup: int, amp: bool, device_name: str,
        log=print) -> dict:
    import torch

    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.clip_adapter.model import ClipAdapterModel
    from dfer_ros.training.losses import MultiTaskLoss

    device = torch.device(device_name)
    cfg = load_config(config)
    cfg.clip_weights = None  # random weights: same cost as the real tower
    torch.manual_seed(0)
    model = ClipAdapterModel(cfg).to(device)
    model.train()
    t, s = frames or cfg.window, cfg.image_size
    c, a = len(cfg.expression_labels), len(cfg.au_names)
    use_amp = amp and device.type == "cuda"
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = MultiTaskLoss()
    gen = torch.Generator(device="cpu").manual_seed(0)
    clips = torch.randn((batch, t, 3, s, s), generator=gen).to(device)
    batch_t = {"expression": torch.randint(0, c, (batch,), generator=gen).to(device),
               "va": (torch.rand((batch, 2), generator=gen) * 2 - 1).to(device),
               "aus": torch.randint(0, 2, (batch, a), generator=gen).float().to(device)}
    mask = torch.ones((batch, t), dtype=torch.bool, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    log(f"model {cfg.name}: {model.num_parameters / 1e6:.1f} M parameters, "
        f"{model.num_trainable / 1e6:.2f} M trainable; "
        f"batch {batch} clips x {t} frames at {s}x{s}, amp {use_amp}, device {device}")

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            out = model(clips, mask)
        loss, _ = criterion(out, batch_t)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    result = {"config": str(config), "device": str(device), "batch": batch, "frames": t, "image_size": s,
              "amp": use_amp, "steps": steps, "ms_per_step_median": med * 1000.0,
              "ms_per_step_min": min(times) * 1000.0, "clips_per_s": batch / med, "frames_per_s": batch * t / med,
              "trainable_parameters": model.num_trainable, "parameters": model.num_parameters}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    log(f"{result['ms_per_step_median']:.1f} ms/step (min {result['ms_per_step_min']:.1f}), "
        f"{result['clips_per_s']:.3g} clips/s, {result['frames_per_s']:.3g} frames/s"
        + (f", peak GPU memory {result['peak_gpu_memory_gib']:.2f} GiB on {result['gpu']}" if "gpu" in result else ""))
    return result
