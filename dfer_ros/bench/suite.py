"""The benchmark suite behind ``make bench`` / ``dfer bench --out FILE.json``.

It does not re-implement the measurements: it calls the other benchmarks' functions and collects
their numbers into one JSON file and one markdown table.

  throughput   ``perception_bench.run_scenario`` on grids of 1, 2, 4 and 8 copies of the real webcam
               face video at 640x480 and 1280x720: fps, per-stage ms, faces found, RSS after each
  streaming    ``streaming_bench.run``: one new crop encoded per frame + head over the cached window
               versus re-encoding the whole 16-frame clip (CLIP-adapter ViT-B/16, random weights)
  latency      ``latency_bench`` (a node subprocess fed at 30 Hz; image stamp -> output received)
  expression   ``expression_bench.run``: the old (``fer2013``) and new (``default``) expression nets in one
               run: ms per face of each net, pipeline fps at 640x480 with 1 and 4 faces, new/old ratios
  memory       peak RSS of this process (and RSS after each throughput scenario)
  reid         ``reid_bench.run`` (not in the default sections: four node runs, about 3 minutes): the face
               descriptor's ms per face, pipeline ms with re-identification off/on taking turns frame by frame,
               node latency off/on alternating
  soak         ``soak_bench.run`` (not in the default sections: 30,000 frames take about 35 minutes on 2
               cores): node RSS at start, every 5,000 frames and at the end, slope in MB per 1,000 frames
  loaded       ``loaded_bench.run``: the node over DDS at 30 Hz, an empty room and 1, 4 and 25 faces, as the machine is and
               beside one busy process per core: output rate, p99 latency, slowest refresh ages, node CPU
  brief_faces  ``brief_faces_bench.run`` (not in the default sections: about 8 minutes): real face stills shown
               for 0.3 s each, the share reported with the defaults and with scan_every 1, time to the first report
  soak_offline ``dfer bench soak --offline`` in its own process (not in the default sections): the soak's frames
               through an in-process pipeline, as ``dfer eval`` runs a long video; the tool's RSS and slope
  startup_signals, oversized_images  ``hostile_bench`` (not in the default sections): SIGINT at given delays
               after starting ``dfer node``, and node RSS after oversized raw images with the rmw's reader pool
               (reliable and best-effort QoS) and with DYNAMIC readers (docs/hostile_inputs.md)
  detector_memory  ``detector_bench memory`` (not in the default sections: 100,000 calls per detector take
               tens of minutes on 2 cores): the default detector and yuface's YuNet, each in its own process,
               RSS at start, every 10 % of the calls and at the end, slope in MiB per 1,000 calls
  hri          ``dfer bench hri cost`` in its own process (not in the default sections: about 2 minutes): what
               ``hri.enabled`` adds per image at 1, 4 and 25 faces, beside / producer, no subscribers / every
               REP-155 topic subscribed (docs/rep155.md)
  gpu          CUDA (torch): the GPU streaming section; TensorRT (when installed): the ViT image tower
               exported to ONNX and built as an fp16 engine, ms per batch of 1/4/8 crops. Skipped with
               the reason when there is no GPU.

The default settings finish in about 5-8 minutes on a 2-core machine; ``--quick`` is a smoke run
(seconds, tiny model, no latency run). Every section records its own error instead of ending the suite.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from dfer_ros.assets import REPO_ROOT
from dfer_ros.bench.loaded_bench import FACES as LOADED_FACES
from dfer_ros.bench.perception_bench import GRIDS, grid_frames  # noqa: F401  (the suite's public names)

log = logging.getLogger(__name__)

MODELS = REPO_ROOT / "models"


@dataclass
class SuiteConfig:
    """What to run; the defaults are the full suite, ``quick()`` the smoke-test settings."""

    frames: int = 60  # frames per throughput scenario
    faces: tuple[int, ...] = (1, 2, 4, 8)
    resolutions: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
    model: str = "default"  # a model spec (estimators.loader): a name, an exported folder or a config YAML
    checkpoint: Optional[str] = None  # with a config YAML
    backend: str = "onnxruntime"
    streaming_config: Path = MODELS / "clip_vitb16_abaw.yaml"
    streaming_steps: int = 6
    reencode_steps: int = 2
    latency_seconds: float = 10.0  # 0 = skip the node latency run
    gpu: bool = True
    crowd_faces: tuple[int, ...] = (1, 4, 10, 25, 50)  # the crowd section (crowd_bench): faces per grid
    crowd_seconds: float = 6.0  # measured seconds per crowd scene and mode (30 Hz camera)
    crowd_video_frames: int = 300  # frames of the crowd section's back-to-back video part
    crowd_tile_crowds: bool = True  # the crowd section's small-face webcam tile crowds (300 frames each)
    loaded_faces: tuple[int, ...] = LOADED_FACES  # the loaded section: faces per scene (0, 1 or square numbers)
    loaded_seconds: float = 10.0  # measured seconds per loaded run (two runs per scene: quiet and loaded)
    brief_faces_per_kind: int = 60  # the brief_faces section (only run when asked for): stills per kind
    hri_faces: tuple[int, ...] = (1, 4, 25)  # the hri section (only run when asked for): faces per case
    hri_frames: int = 100  # images timed per hri case
    soak_frames: int = 30000  # frames of the soak section (only run when asked for: --sections soak)
    # the detector_memory section (only run when asked for): calls per detector, each in its own process
    detector_memory_calls: int = 100_000
    detector_memory_detectors: tuple[str, ...] = ("centerface", "yunet")
    expression_repeats: int = 200  # calls per net in the expression section (its pipelines use ``frames``)
    behaviour_frames: int = 150  # frames per behaviour scene (quality + events on vs off)
    behaviour_repeats: int = 3  # passes over the frames per scene (the two pipelines take turns per frame)
    sections: tuple[str, ...] = ("throughput", "crowd", "expression", "behaviour", "streaming", "latency", "loaded",
                                 "gpu")

    @classmethod
    def quick(cls) -> "SuiteConfig":
        return cls(frames=4, faces=(1, 2), resolutions=((640, 480),), streaming_config=MODELS / "tiny_test.yaml",
                   streaming_steps=2, reencode_steps=1, latency_seconds=0.0, crowd_faces=(1, 4), crowd_seconds=0.5,
                   crowd_video_frames=4, crowd_tile_crowds=False, loaded_faces=(), expression_repeats=10,
                   behaviour_frames=4,
                   behaviour_repeats=1)


@dataclass
class SuiteResult:
    config: dict
    host: dict
    sections: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (MiB) of this process (Linux ru_maxrss is KiB).

    Children are not reported: a child forked from this process counts the parent's pages until it
    execs, so RUSAGE_CHILDREN shows the parent's size, not the child's."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def run_throughput(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """fps and per-stage ms for every (resolution, faces) pair, via ``perception_bench.run_scenario``."""
    from dfer_ros.assets import sample_video
    from dfer_ros.bench.perception_bench import load_frames, rss_mb, run_scenario
    from dfer_ros.estimators.loader import load_model
    from dfer_ros.perception.config import PipelineConfig

    config = PipelineConfig().validate()
    config.detection.max_faces = max(config.detection.max_faces, max(cfg.faces))
    model = load_model(cfg.model, cfg.backend, cfg.checkpoint)
    source = load_frames(sample_video(), cfg.frames)
    rows = []
    for width, height in cfg.resolutions:
        for faces in cfg.faces:
            name = f"{width}x{height} {faces} face{'s' if faces > 1 else ''}"
            res = run_scenario(name, grid_frames(source, faces, width, height), model, config, faces)
            row = asdict(res)
            row.update({"width": width, "height": height, "faces": faces, "rss_mb_after": round(rss_mb(), 1)})
            rows.append(row)
            progress(f"  {name}: {res.fps:.1f} fps, {res.total_ms:.1f} ms/frame, {res.mean_faces:.2f} faces found")
    return {"model": model.name, "backend": model.backend, "frames": cfg.frames, "scenarios": rows}


def run_crowd(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``crowd_bench``: 1-50 real faces at a 30 Hz camera, scheduler on vs budget off in the same run."""
    from dfer_ros.bench.crowd_bench import run

    return run(cfg.crowd_faces, cfg.resolutions, cfg.crowd_seconds, warmup=min(1.5, cfg.crowd_seconds),
               video_frames=cfg.crowd_video_frames, model_name=cfg.model, backend=cfg.backend, progress=progress,
               checkpoint=cfg.checkpoint, tile_crowds=cfg.crowd_tile_crowds)


def run_loaded(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``loaded_bench.run``: the node over DDS as it is and beside one busy process per core, an empty room and 1, 4
    and 25 faces."""
    from dfer_ros.bench.loaded_bench import run

    return run(cfg.loaded_faces, cfg.loaded_seconds, progress=progress)


def run_brief_faces(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``brief_faces_bench.run``: real face stills shown for 0.3 s, reported with the defaults vs scan_every 1."""
    from dfer_ros.bench.brief_faces_bench import run

    return run(cfg.brief_faces_per_kind, cfg.model, cfg.backend, progress=progress)


def run_expression(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """Old vs new default expression net, nets and 640x480 pipelines timed in one run."""
    from dfer_ros.bench.expression_bench import run

    return run(cfg.frames, cfg.expression_repeats, cfg.backend, progress=progress)


def run_behaviour(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``behaviour_bench``: pipeline fps with face quality + expression events on vs off, same run."""
    from dfer_ros.bench.behaviour_bench import run

    return run(cfg.behaviour_frames, cfg.behaviour_repeats, cfg.model, cfg.backend, cfg.checkpoint, progress)


def run_streaming(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """The streaming vs re-encoding benchmark (CPU; its GPU part runs when CUDA is there)."""
    from dfer_ros.bench.streaming_bench import run

    return run(Path(cfg.streaming_config), cfg.streaming_steps, cfg.reencode_steps, threads=1, log=progress)


def run_latency(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """The node latency benchmark in a subprocess (it owns rclpy init and its node subprocess)."""
    if cfg.latency_seconds <= 0:
        return {"skipped": "latency run disabled (--latency-seconds 0 or --quick)"}
    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        out = Path(tmp) / "latency.json"
        cmd = [sys.executable, "-m", "dfer_ros.cli.bench_latency", "--out", str(out), "--seconds",
               str(cfg.latency_seconds), "--warmup", "3", "--model", str(cfg.model), "--backend", cfg.backend]
        if cfg.checkpoint:
            cmd += ["--checkpoint", str(cfg.checkpoint)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300 + cfg.latency_seconds)
        lines = [ln for ln in (proc.stdout or "").splitlines() if ln.startswith("bench:")]
        for line in lines:
            progress(f"  {line}")
        if not out.exists():
            raise RuntimeError(f"latency_bench exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
        return json.loads(out.read_text())


def run_gpu(cfg: SuiteConfig, streaming: Optional[dict], progress: Callable[[str], None] = print) -> dict:
    """CUDA and TensorRT numbers, or the reason they were skipped."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"skipped": f"CUDA is not available (torch {torch.__version__}, no GPU on this machine)"}
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    out["torch_streaming"] = (streaming or {}).get("gpu") or "not run (streaming section skipped or failed)"
    torch.cuda.reset_peak_memory_stats()
    out["tensorrt"] = _tensorrt_tower(cfg, progress)
    out["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def _tensorrt_tower(cfg: SuiteConfig, progress: Callable[[str], None]) -> dict:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return {"skipped": "TensorRT is not installed"}
    import torch

    from dfer_ros.backends.factory import create_session
    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.clip_adapter.export import IMAGE_INPUTS, IMAGE_OUTPUTS, ImageTowerExport, export_onnx
    from dfer_ros.clip_adapter.model import ClipAdapterModel

    mcfg = load_config(Path(cfg.streaming_config))
    mcfg.clip_weights = None  # random weights: same cost as the real tower
    model = ClipAdapterModel(mcfg).eval()
    s = mcfg.image_size
    res: dict[str, Any] = {"config": str(cfg.streaming_config), "precision": "fp16", "ms_per_batch": {}}
    with tempfile.TemporaryDirectory(prefix="dfer-trt-") as tmp:
        onnx_path = Path(tmp) / "image_tower.onnx"
        pixels = np.random.default_rng(0).standard_normal((1, 3, s, s)).astype(np.float32)
        export_onnx(ImageTowerExport(model), {IMAGE_INPUTS[0]: pixels}, onnx_path, IMAGE_INPUTS, IMAGE_OUTPUTS)
        t0 = time.perf_counter()
        session = create_session("tensorrt", onnx_path, fp16=True, max_batch=8, cache_dir=Path(tmp) / "engines")
        res["engine_build_s"] = time.perf_counter() - t0
        for batch in (1, 4, 8):
            x = np.random.default_rng(batch).standard_normal((batch, 3, s, s)).astype(np.float32)
            for _ in range(3):
                session.run({IMAGE_INPUTS[0]: x})
            times = []
            for _ in range(20):
                torch.cuda.synchronize()
                t = time.perf_counter()
                session.run({IMAGE_INPUTS[0]: x})
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t) * 1000.0)
            res["ms_per_batch"][batch] = float(np.median(times))
            progress(f"  TensorRT fp16 image tower, batch {batch}: {res['ms_per_batch'][batch]:.2f} ms")
    return res


def run_reid(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``reid_bench.run`` in a subprocess: descriptor ms per face, pipeline and node latency with re-id off vs on."""
    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        out = Path(tmp) / "reid.json"
        seconds = cfg.latency_seconds or 15.0
        cmd = [sys.executable, "-m", "dfer_ros.cli.bench_reid", "--out", str(out), "--seconds", str(seconds)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900 + 4 * seconds)
        for line in (proc.stdout or "").splitlines():
            if line.startswith("bench:"):
                progress(f"  {line}")
        if not out.exists():
            raise RuntimeError(f"reid_bench exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
        return json.loads(out.read_text())


def run_hri(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``dfer bench hri cost`` in a subprocess (it starts itself again with hri_msgs importable)."""
    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        out = Path(tmp) / "hri.json"
        cmd = [sys.executable, "-m", "dfer_ros.cli.bench_hri", "cost", "--out", str(out), "--frames",
               str(cfg.hri_frames), "--faces", *map(str, cfg.hri_faces)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
        if not out.exists():
            raise RuntimeError(f"dfer bench hri exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
        report = json.loads(out.read_text())["cost"]
        for row in report["results"]:
            progress(f"  {row['faces']} faces, {row['mode']}, subscribed {row['subscribed']}: "
                     f"{row['wall_ms_median']} ms an image")
        return report


def run_soak(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``soak_bench.run``: a node subprocess fed ``cfg.soak_frames`` frames with face churn; its RSS over time."""
    from dfer_ros.bench.soak_bench import run, summary_lines

    report = run(cfg.soak_frames, warmup=min(2000, cfg.soak_frames // 5), progress=progress, progress_bar=False)
    for line in summary_lines(report):
        progress("  " + line)
    return asdict(report)


def run_soak_offline(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``dfer bench soak --offline`` in a process of its own (its RSS is the offline tool's alone)."""
    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        path = Path(tmp) / "soak_offline.json"
        cmd = [sys.executable, "-m", "dfer_ros.cli.bench_soak", "--offline", "--frames", str(cfg.soak_frames),
               "--warmup", str(min(2000, cfg.soak_frames // 5)), "--no-progress", "--out", str(path)]
        with subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                if line.startswith(("  frame", "soak:")):
                    progress("  " + line.rstrip())
        if proc.returncode != 0 or not path.is_file():
            raise RuntimeError(f"dfer bench soak --offline exited with {proc.returncode}")
        return json.loads(path.read_text())


def run_startup_signals(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    from dfer_ros.bench.hostile_bench import startup_signals

    return startup_signals(progress=progress)


def run_oversized_images(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """Node RSS after oversized raw images with the project's Fast DDS profile (rmw's reader pool; reliable and
    best-effort QoS), and with readers that free each sample (``hostile_bench.dynamic_reader_env``), each in a
    node of its own."""
    from dfer_ros.bench.hostile_bench import dynamic_reader_env, oversized_images

    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        return {"rmw_default_pool": oversized_images(progress=progress),
                "rmw_default_pool_best_effort": oversized_images(reliability="best_effort", progress=progress),
                "dynamic_readers": oversized_images(env_overrides=dynamic_reader_env(Path(tmp)), progress=progress)}


def run_detector_memory(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> dict:
    """``detector_bench memory`` per detector, each in its own process (a leak must not count against the
    other): RSS at start, every 10% of the calls and at the end, and the slope in MB per 1,000 calls."""
    out = {}
    every = max(1, cfg.detector_memory_calls // 10)
    with tempfile.TemporaryDirectory(prefix="dfer-bench-") as tmp:
        for name in cfg.detector_memory_detectors:
            path = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, "-m", "dfer_ros.bench.detector_bench", "memory", "--detector", name,
                   "--calls", str(cfg.detector_memory_calls), "--every", str(every), "--max-side", "96",
                   "--out", str(path)]
            with subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
                for line in proc.stdout:
                    if line.startswith(f"{name}:"):
                        progress("  " + line.rstrip())
            if proc.returncode != 0 or not path.is_file():
                raise RuntimeError(f"detector_bench memory --detector {name} exited with {proc.returncode}")
            out[name] = json.loads(path.read_text())
    return out


def run_suite(cfg: SuiteConfig, progress: Callable[[str], None] = print) -> SuiteResult:
    """Run every section in ``cfg.sections``; a failing section records its error and the rest go on."""
    import onnxruntime

    host = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "processor": platform.processor() or platform.machine()}
    cfg_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    result = SuiteResult(config=cfg_dict, host=host)
    steps = [("throughput", lambda: run_throughput(cfg, progress)),
             ("crowd", lambda: run_crowd(cfg, progress)),
             ("expression", lambda: run_expression(cfg, progress)),
             ("behaviour", lambda: run_behaviour(cfg, progress)),
             ("streaming", lambda: run_streaming(cfg, progress)),
             ("latency", lambda: run_latency(cfg, progress)),
             ("reid", lambda: run_reid(cfg, progress)),
             ("hri", lambda: run_hri(cfg, progress)),
             ("soak", lambda: run_soak(cfg, progress)),
             ("brief_faces", lambda: run_brief_faces(cfg, progress)),
             ("loaded", lambda: run_loaded(cfg, progress)),
             ("soak_offline", lambda: run_soak_offline(cfg, progress)),
             ("startup_signals", lambda: run_startup_signals(cfg, progress)),
             ("oversized_images", lambda: run_oversized_images(cfg, progress)),
             ("detector_memory", lambda: run_detector_memory(cfg, progress)),
             ("gpu", lambda: run_gpu(cfg, result.sections.get("streaming"), progress) if cfg.gpu
              else {"skipped": "disabled (--no-gpu)"})]
    for name, fn in steps:
        if name not in cfg.sections:
            continue
        progress(f"[{name}]")
        t0 = time.perf_counter()
        try:
            result.sections[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others' numbers
            result.errors[name] = f"{type(exc).__name__}: {exc}"
            log.debug("section %s failed:\n%s", name, traceback.format_exc())
            progress(f"  {name} failed: {result.errors[name]}")
        result.seconds[name] = round(time.perf_counter() - t0, 1)
    result.sections["memory"] = {"peak_rss_mb": peak_rss_mb()}
    return result


def _f(v, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def markdown(result: SuiteResult) -> str:
    """The summary table(s) printed at the end of ``dfer bench``."""
    from dfer_ros.perception.pipeline import STAGES

    lines = [f"## dfer bench ({result.host['cpus']} CPU(s), {result.host['machine']})", ""]
    thr = result.sections.get("throughput")
    if thr:
        lines += [f"Throughput ({thr['model']}, {thr['backend']}, {thr['frames']} frames per row; ms per frame)", "",
                  "| resolution | faces | found | fps | " + " | ".join(STAGES) + " | total | RSS MiB |",
                  "|---|---|---|---|" + "---|" * len(STAGES) + "---|---|"]
        for r in thr["scenarios"]:
            lines.append(f"| {r['size']} | {r['faces']} | {r['mean_faces']:.2f} | {r['fps']:.1f} | "
                         + " | ".join(_f(r["stage_ms"].get(s), 2) for s in STAGES)
                         + f" | {r['total_ms']:.1f} | {r['rss_mb_after']:.0f} |")
        lines.append("")
    crowd = result.sections.get("crowd")
    if crowd:
        from dfer_ros.bench.crowd_bench import markdown as crowd_markdown

        lines += [crowd_markdown(crowd), ""]
    expr = result.sections.get("expression")
    if expr:
        from dfer_ros.bench.expression_bench import markdown as expression_markdown

        lines += expression_markdown(expr)
    behaviour = result.sections.get("behaviour")
    if behaviour:
        from dfer_ros.bench.behaviour_bench import markdown as behaviour_markdown

        lines += [behaviour_markdown(behaviour), ""]
    st = result.sections.get("streaming")
    if st and st.get("cpu"):
        c = st["cpu"]
        lines += ["Streaming vs clip re-encoding (1 face, CPU, ms per new frame)", "",
                  "| model | window | streaming ms | re-encoding ms | throughput ratio |", "|---|---|---|---|---|",
                  f"| {Path(st['config']).stem} | {st['window']} | {c['streaming_ms_per_step']:.1f} | "
                  f"{c['reencode_ms_per_step']:.1f} | {c['throughput_ratio']:.1f}x |", ""]
    lat = result.sections.get("latency")
    if lat and "skipped" in lat:
        lines += [f"End-to-end node latency: skipped ({lat['skipped']})", ""]
    elif lat:
        ms = lat.get("latency_ms", {})
        lines += ["End-to-end node latency (image stamp -> faces/affect in another process)", "",
                  "| resolution | rate Hz | results | p50 ms | p90 ms | p99 ms | max ms |",
                  "|---|---|---|---|---|---|---|",
                  f"| {lat.get('resolution')} | {lat.get('rate_hz')} | {lat.get('results')}/{lat.get('frames_sent')} | "
                  f"{_f(ms.get('p50'))} | {_f(ms.get('p90'))} | {_f(ms.get('p99'))} | {_f(ms.get('max'))} |", ""]
    loaded = result.sections.get("loaded")
    if loaded and loaded.get("rows"):
        from dfer_ros.bench.loaded_bench import markdown as loaded_markdown

        lines += ["The node beside one busy process per core (640x480 at 30 Hz over DDS)", "", loaded_markdown(loaded), ""]
    hri = result.sections.get("hri")
    if hri and hri.get("results"):
        from dfer_ros.bench.hri_bench import markdown as hri_markdown

        lines += ["REP-155 output: what hri.enabled adds per image (HriPublisher.publish)", "", hri_markdown(hri), ""]
    soak = result.sections.get("soak")
    if soak:
        from dfer_ros.bench.soak_bench import SoakReport, summary_lines

        lines += ["Soak (node subprocess, faces entering and leaving)", ""] + summary_lines(SoakReport(**soak)) + [
            "", "| frame | node RSS MB |", "|---|---|"] + [f"| {f} | {mb} |" for f, mb in soak["rss_mb"]
                                                     if f == 0 or f % 5000 == 0 or f == soak["frames"]] + [""]
    offline = result.sections.get("soak_offline")
    if offline:
        from dfer_ros.bench.soak_bench import SoakReport, summary_lines

        lines += ["Offline soak (in-process pipeline, as dfer eval; malloc arenas capped)", ""] + summary_lines(
            SoakReport(**offline)) + [""]
    signals = result.sections.get("startup_signals")
    if signals:
        lines += ["SIGINT during dfer node start-up (outcomes per delay)", "", "| delay s | outcomes |", "|---|---|"]
        lines += [f"| {delay} | {outcomes} |" for delay, outcomes in signals.items()] + [""]
    big = result.sections.get("oversized_images")
    if big:
        lines += ["Oversized raw images: node RSS after each, since before the first (anonymous part in brackets)", "",
                  "| image | rmw default reader pool, reliable | the same, best effort | DYNAMIC readers, reliable |",
                  "|---|---|---|---|"]

        def cell(row):
            return f"{row['rss_growth_mb']:+.1f} MB ({row.get('anon_growth_mb', float('nan')):+.1f})"

        for default, best_effort, dynamic in zip(big["rmw_default_pool"]["rows"],
                                                 big.get("rmw_default_pool_best_effort", {}).get("rows", []),
                                                 big["dynamic_readers"]["rows"]):
            lines.append(f"| {default['size']} | {cell(default)} | {cell(best_effort)} | {cell(dynamic)} |")
        lines.append("")
    dmem = result.sections.get("detector_memory")
    if dmem:
        lines += ["Detector memory (one process per detector, a face frame alternating with a blank one)", "",
                  "| detector | calls | RSS start MiB | after warm-up | end | MiB per 1,000 calls |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {r['calls']} | {_f(r['rss_start_mb'])} | {_f(r['rss_warm_mb'])} | {_f(r['rss_end_mb'])} | "
                  f"{_f(r['slope_mb_per_1000'], 3)} |" for name, r in dmem.items()] + [""]
    mem = result.sections.get("memory", {}).get("peak_rss_mb", {})
    lines += [f"Peak memory (RSS) of the suite process: {_f(mem.get('self'), 0)} MiB (all in-process sections; "
              f"the throughput table gives RSS after each scenario)", ""]
    gpu = result.sections.get("gpu")
    if gpu is not None:
        if "skipped" in gpu:
            lines.append(f"GPU: skipped ({gpu['skipped']})")
        else:
            lines.append(f"GPU {gpu['device']}:")
            ts = gpu.get("torch_streaming")
            if isinstance(ts, dict):
                for faces, row in ts.get("faces", {}).items():
                    lines.append(f"  torch fp16, {faces} face(s): streaming {row['streaming_ms_per_frame']:.2f} ms, "
                                 f"re-encoding {row['reencode_ms_per_frame']:.2f} ms per frame")
            trt = gpu.get("tensorrt", {})
            if "skipped" in trt:
                lines.append(f"  TensorRT: skipped ({trt['skipped']})")
            elif trt:
                lines.append("  TensorRT fp16 image tower: " + ", ".join(
                    f"batch {b}: {ms:.2f} ms" for b, ms in trt["ms_per_batch"].items()))
    for name, err in result.errors.items():
        lines.append(f"{name}: FAILED ({err})")
    lines.append("section seconds: " + ", ".join(f"{k} {v}" for k, v in result.seconds.items()))
    return "\n".join(lines)


def save(result: SuiteResult, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    return path
