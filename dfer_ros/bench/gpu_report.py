"""GPU figures of the torch backend and of training, in one JSON report (not a test: it measures).

    dfer bench gpu --out out/gpu_report.json

(run from the repository root; on the lent GPU machine, whose image has torch, transformers,
OpenCV, PyYAML, safetensors, matplotlib and pytest: ``PYTHONUNBUFFERED=1 python3 -m
dfer_ros.bench.gpu_report --out $OUT/gpu_report.json``, a few minutes).

Sections (each one's failure is recorded in the report and the others still run):
  tower      CLIP-adapter image tower (random init, real size), fp16 and bf16: ms per batch of
             1, 4, 8, 16, 32 face crops, ms per crop, peak memory;
  head       the temporal head over cached windows for the same batches;
  streaming  the node's per-frame step for 8 faces: encode the 8 new crops once, head over 8 windows;
  compile    that step with torch.compile (default mode; "reduce-overhead", which uses CUDA graphs)
             and with a hand-captured CUDA graph, against eager, with the largest output difference;
  train      a short dfer train run of the config on synthetic data at its image size: clips/s of
             the second epoch and peak memory;
  ddp        dfer train under torchrun with ONE process: the DDP code path with nccl on one GPU;
  pytest     the test files that need CUDA (``pytest tests -k cuda``).
TensorRT is not measured: it is not installed on the lent GPU machine and its wheels are larger than
what can be carried there (the Jetson anchor is 5.7 ms per crop, ViT-B/16 fp16, batch 1).

Without CUDA it writes a report that says it skipped and exits 0; ``--allow-cpu`` with
``--model models/tiny_test.yaml`` runs every section on the CPU in a tiny configuration (the test
``tests/test_gpu_report.py`` does, so the script is known to run before a GPU is lent).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("tower", "head", "streaming", "compile", "train", "ddp", "pytest")
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
DEFAULT_CONFIG = REPO / "models" / "clip_vitb16_abaw.yaml"
# modules that need ROS cannot be collected on a GPU machine without it: run the CUDA tests regardless
DEFAULT_PYTEST_ARGS = ("tests", "-k", "cuda", "--continue-on-collection-errors")


class Bench:
    def __init__(self, config: Path, device: str, steps: int, warmup: int, log: Callable[[str], None]):
        import torch

        self.torch = torch
        self.config, self.device, self.steps, self.warmup, self.log = config, torch.device(device), steps, warmup, log
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def median_ms(self, fn: Callable[[], Any]) -> float:
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.steps):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1000.0)
        return statistics.median(times)

    def reset_memory(self) -> None:
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mib(self) -> Optional[float]:
        return self.torch.cuda.max_memory_allocated(self.device) / 2 ** 20 if self.cuda else None

    def model(self, dtype: str):
        from dfer_ros.clip_adapter.config import load_config
        from dfer_ros.clip_adapter.model import ClipAdapterModel

        cfg = load_config(self.config)
        cfg.clip_weights = None  # random init: the same cost as the real weights
        self.torch.manual_seed(0)
        model = ClipAdapterModel(cfg).to(device=self.device, dtype=getattr(self.torch, DTYPES[dtype])).eval()
        return model, cfg

    def inputs(self, cfg, dtype: str, faces: int):
        t = self.torch
        gen = t.Generator().manual_seed(faces)
        kind = getattr(t, DTYPES[dtype])
        crops = t.randn((faces, 3, cfg.image_size, cfg.image_size), generator=gen).to(self.device, kind)
        window = t.nn.functional.normalize(t.randn((faces, cfg.window, cfg.embedding_dim), generator=gen), dim=-1)
        return crops, window.to(self.device, kind)


def tower_and_head(b: Bench, dtypes: Sequence[str], batches: Sequence[int], which: str) -> dict:
    out: dict[str, Any] = {}
    for dtype in dtypes:
        model, cfg = b.model(dtype)
        rows = {}
        b.reset_memory()
        with b.torch.inference_mode():
            for n in batches:
                crops, window = b.inputs(cfg, dtype, n)
                fn = (lambda: model.encode_frames(crops)) if which == "tower" else (lambda: model.forward_head(window))
                ms = b.median_ms(fn)
                rows[str(n)] = {"ms": ms, "ms_per_face": ms / n}
                b.log(f"{which} {dtype} batch {n:3d}: {ms:8.3f} ms ({ms / n:.3f} ms per face)")
        out[dtype] = {"batches": rows, "peak_memory_mib": b.peak_mib(),
                      "parameters": sum(p.numel() for p in model.parameters())}
        del model
    return out


def streaming(b: Bench, dtypes: Sequence[str], faces: int) -> dict:
    out: dict[str, Any] = {}
    for dtype in dtypes:
        model, cfg = b.model(dtype)
        crops, window = b.inputs(cfg, dtype, faces)
        b.reset_memory()
        with b.torch.inference_mode():
            def step():  # one camera frame: new crops once, then the head over each track's window
                emb = model.encode_frames(crops)
                return model.forward_head(b.torch.cat([window[:, 1:], emb[:, None]], dim=1))
            ms = b.median_ms(step)
        out[dtype] = {"faces": faces, "ms_per_frame": ms, "peak_memory_mib": b.peak_mib()}
        b.log(f"streaming {dtype} {faces} faces: {ms:.3f} ms per frame")
        del model
    return out


def compiled(b: Bench, dtype: str, faces: int, modes: Sequence[str], backend: str = "inductor") -> dict:
    torch = b.torch
    model, cfg = b.model(dtype)
    crops, window = b.inputs(cfg, dtype, faces)

    def step(c, w):
        emb = model.encode_frames(c)
        return model.forward_head(torch.cat([w[:, 1:], emb[:, None]], dim=1))["expression_logits"]

    out: dict[str, Any] = {"dtype": dtype, "faces": faces, "backend": backend}
    with torch.no_grad():
        ref = step(crops, window).float()
        out["eager_ms"] = b.median_ms(lambda: step(crops, window))
        b.log(f"compile: eager {out['eager_ms']:.3f} ms per frame ({dtype}, {faces} faces)")
        for mode in modes:
            key = f"compile_{mode.replace('-', '_')}"
            try:
                fn = torch.compile(step, backend=backend, mode=None if mode == "default" else mode, dynamic=False)
                start = time.perf_counter()
                got = fn(crops, window).float()
                b.sync()
                first = time.perf_counter() - start
                ms = b.median_ms(lambda: fn(crops, window))
                out[key] = {"ms": ms, "speedup": out["eager_ms"] / ms, "first_call_s": first,
                            "max_abs_diff": float((got - ref).abs().max())}
                b.log(f"compile: {mode} {ms:.3f} ms ({out['eager_ms'] / ms:.2f}x eager), first call {first:.1f} s")
            except Exception as exc:  # noqa: BLE001 - a mode that fails here is a result, not a crash
                out[key] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                b.log(f"compile: {mode} failed: {out[key]['error']}")
        if not b.cuda:
            out["cuda_graph"] = {"skipped": "CUDA graphs need CUDA"}
        else:
            static_c, static_w = crops.clone(), window.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step(static_c, static_w)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = step(static_c, static_w)
            graph.replay()
            b.sync()
            ms = b.median_ms(graph.replay)
            out["cuda_graph"] = {"ms": ms, "speedup": out["eager_ms"] / ms,
                                 "max_abs_diff": float((static_out.float() - ref).abs().max())}
            b.log(f"CUDA graph: {ms:.3f} ms ({out['eager_ms'] / ms:.2f}x eager)")
    return out


def _synthetic_train_config(b: Bench, root: Path, out: Path, epochs: int, clips_per_class: int, batch: int) -> dict:
    """A training config on synthetic DFEW-layout clips at the model's image size and window, with the
    model config copied to ``root`` with random init (no CLIP weights are needed, the cost is the same)."""
    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.training import synthetic

    cfg = load_config(b.config)
    cfg.clip_weights = None
    model_yaml = root / "model.yaml"
    cfg.dump(model_yaml)
    data = root / "dfew"
    if not data.exists():
        synthetic.write_dfew(data, clips_per_class=clips_per_class, frames=cfg.window, size=cfg.image_size, seed=1)
    return {"model": str(model_yaml), "data": {"kind": "dfew", "root": str(data), "options": {"fold": 1},
                                             "train_split": "train", "val_split": None},
            "optim": {"epochs": epochs, "batch_size": batch, "warmup_steps": 1, "num_workers": 2 if b.cuda else 0},
            "output_dir": str(out), "progress": False, "device": "cuda" if b.cuda else "cpu", "seed": 0}


def train(b: Bench, work: Path, clips_per_class: int, batch: int) -> dict:
    from dfer_ros.training.config import train_config_from_dict
    from dfer_ros.training.distributed import DistContext
    from dfer_ros.training.trainer import Trainer

    cfg = train_config_from_dict(_synthetic_train_config(b, work, work / "train", 2, clips_per_class, batch))
    trainer = Trainer(cfg, dist=DistContext(device=b.device))
    b.reset_memory()
    trainer.fit()
    last = trainer.history[-1]
    clips = len(trainer.train_set)
    res = {"clips_per_epoch": clips, "batch": batch, "frames_per_clip": trainer.train_set.t,
           "image_size": trainer.train_set.size, "second_epoch_s": last["seconds"],
           "clips_per_s": clips / last["seconds"], "peak_memory_mib": b.peak_mib(), "amp": trainer.amp}
    b.log(f"train: {res['clips_per_s']:.1f} clips/s ({clips} clips of {res['frames_per_clip']} frames, "
          f"batch {batch}, amp {trainer.amp}), peak memory {res['peak_memory_mib']}")
    return res


def ddp(b: Bench, work: Path, clips_per_class: int, batch: int, timeout: int) -> dict:
    import yaml

    raw = _synthetic_train_config(b, work, work / "ddp", 1, clips_per_class, batch)
    path = work / "ddp.yaml"
    path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "dfer_ros.cli.train", str(path), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    text = proc.stdout + proc.stderr
    backend = next((w for w in ("nccl", "gloo") if f"backend {w}" in text), None)
    res = {"command": " ".join(cmd), "returncode": proc.returncode, "backend": backend, "world_size": 1,
           "seconds": time.perf_counter() - start, "output_tail": text[-1500:]}
    b.log(f"ddp: torchrun 1 process, backend {backend}, exit {proc.returncode}")
    return res


def run_pytest(args: Sequence[str], timeout: int, log) -> dict:
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    res = {"command": " ".join(cmd), "returncode": proc.returncode,  # 5 = no test selected
           "summary": lines[-1] if lines else "", "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    log(f"pytest {' '.join(args)}: {res['summary']} (exit {proc.returncode})")
    return res


def environment(b: Bench) -> dict:
    torch = b.torch
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(b.device), "python": sys.version.split()[0],
           "config": str(b.config)}
    if b.cuda:
        props = torch.cuda.get_device_properties(b.device)
        env.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2 ** 30, gpu_count=torch.cuda.device_count())
    try:
        import tensorrt  # noqa: F401
        env["tensorrt"] = "installed"
    except ImportError:
        env["tensorrt"] = "not installed: the TensorRT backend cannot run on this machine"
    return env


def run(config: Path = DEFAULT_CONFIG, sections: Sequence[str] = SECTIONS, dtypes: Sequence[str] = ("fp16", "bf16"),
        batches: Sequence[int] = (1, 4, 8, 16, 32), faces: int = 8,
        compile_modes: Sequence[str] = ("default", "reduce-overhead"), compile_backend: str = "inductor",
        steps: int = 50, warmup: int = 5, train_clips_per_class: int = 10, train_batch: int = 8,
        pytest_args: Sequence[str] = DEFAULT_PYTEST_ARGS, timeout: int = 300,
        log: Callable[[str], None] = print) -> dict:
    """The report of the chosen ``sections`` (in ``SECTIONS`` order) on CUDA when there is one, else on the CPU;
    a section that fails is recorded under ``errors`` and the others still run. ``timeout``: seconds for each
    subprocess (ddp, pytest)."""
    import torch

    unknown = sorted(set(sections) - set(SECTIONS)) + sorted(set(dtypes) - set(DTYPES))
    if unknown:
        raise ValueError(f"unknown section(s) or dtype(s) {unknown}: sections are {SECTIONS}, dtypes {sorted(DTYPES)}")
    b = Bench(config, "cuda" if torch.cuda.is_available() else "cpu", steps, warmup, log)
    report: dict[str, Any] = {"environment": environment(b), "sections": {}, "errors": {}}
    chosen = [s for s in SECTIONS if s in sections]
    with tempfile.TemporaryDirectory(prefix="dfer_gpu_report_") as tmp:
        work = Path(tmp)
        jobs = {
            "tower": lambda: tower_and_head(b, dtypes, batches, "tower"),
            "head": lambda: tower_and_head(b, dtypes, batches, "head"),
            "streaming": lambda: streaming(b, dtypes, faces),
            "compile": lambda: compiled(b, dtypes[0], faces, compile_modes, compile_backend),
            "train": lambda: train(b, work, train_clips_per_class, train_batch),
            "ddp": lambda: ddp(b, work, train_clips_per_class, train_batch, timeout),
            "pytest": lambda: run_pytest(pytest_args, timeout, log),
        }
        for name in chosen:
            start = time.perf_counter()
            try:
                report["sections"][name] = jobs[name]()
            except Exception as exc:  # noqa: BLE001 - record it, measure the rest
                report["errors"][name] = traceback.format_exc(limit=4)
                log(f"{name} failed: {type(exc).__name__}: {exc}")
            report["sections"].setdefault(name, {})
            if isinstance(report["sections"][name], dict):
                report["sections"][name]["section_seconds"] = round(time.perf_counter() - start, 2)
            if b.cuda:
                torch.cuda.empty_cache()
    return report


if __name__ == "__main__":  # the command line: dfer_ros/cli/gpu_report.py
    from dfer_ros.commands import exec_cli

    exec_cli("gpu_report", "dfer bench gpu")
