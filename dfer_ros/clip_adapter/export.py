"""Export a ClipAdapterModel for the runtime: image tower and temporal head as separate ONNX files
(dynamic batch), class text embeddings, the config, the weights for the torch backend, and a
``manifest.json`` that ``dfer_ros.estimators.clip_model`` reads. Every ONNX file is checked with
``onnx.checker`` and compared against PyTorch under ONNX Runtime on random inputs.

The head's time axis is fixed to the configured window: shorter windows are padded at the end and
described by the ``mask`` input, which keeps one static shape for TensorRT profiles.
"""
from __future__ import annotations

import datetime
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from dfer_ros.backends.engine_cache import file_sha256
from dfer_ros.clip_adapter.config import ClipAdapterConfig
from dfer_ros.clip_adapter.model import ClipAdapterModel

MANIFEST_FORMAT = "dfer_ros.clip_export/1"
IMAGE_INPUTS = ("pixel_values",)
IMAGE_OUTPUTS = ("embeddings",)
HEAD_INPUTS = ("embeddings", "mask")
HEAD_OUTPUTS = ("expression_logits", "valence_arousal", "au_logits", "clip_embedding")
# ONNX Runtime vs PyTorch, fp32, max abs difference per output. Measured differences are <= 7e-7 for
# the tiny and the ViT-B/16-sized random models; 1e-3 leaves room for kernel differences while catching any
# real export bug (wrong op, wrong mask handling) which shows up as O(0.1) differences.
DEFAULT_TOLERANCE = 1e-3


class ImageTowerExport(nn.Module):
    """pixel_values (N, 3, S, S) -> embeddings (N, D): the per-frame encoder alone."""

    def __init__(self, model: ClipAdapterModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(pixel_values)


class HeadExport(nn.Module):
    """embeddings (B, T, D), mask (B, T) bool -> the HEAD_OUTPUTS tuple."""

    def __init__(self, model: ClipAdapterModel):
        super().__init__()
        self.model = model

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor):
        out = self.model.forward_head(embeddings, mask)
        return tuple(out[name] for name in HEAD_OUTPUTS)


def example_inputs(cfg: ClipAdapterConfig, batch: int = 3, seed: int = 0) -> tuple[dict, dict]:
    """Random image and head inputs; the head masks cover a full, a partial and a one-frame window."""
    rng = np.random.default_rng(seed)
    pixels = rng.standard_normal((batch, 3, cfg.image_size, cfg.image_size)).astype(np.float32)
    emb = rng.standard_normal((batch, cfg.window, cfg.embedding_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    mask = np.zeros((batch, cfg.window), bool)
    for i in range(batch):
        mask[i, : max(1, cfg.window - i * (cfg.window // 2))] = True
    return {"pixel_values": pixels}, {"embeddings": emb, "mask": mask}


def export_onnx(module: nn.Module, inputs: dict[str, np.ndarray], path: Path, input_names: Sequence[str],
                output_names: Sequence[str], opset: int = 17) -> None:
    args = tuple(torch.from_numpy(inputs[n]) for n in input_names)
    axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    with torch.no_grad(), warnings.catch_warnings():
        # tracer warnings about Python-level shape checks are expected: those branches are static
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the one that works here
        torch.onnx.export(module, args, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def parity(path: Path, module: nn.Module, inputs: dict[str, np.ndarray], input_names: Sequence[str],
           output_names: Sequence[str]) -> dict[str, float]:
    """Max abs difference per output between ONNX Runtime (CPU) and PyTorch on the same inputs."""
    from dfer_ros.backends.onnxruntime_backend import OnnxRuntimeSession

    ort_out = OnnxRuntimeSession(path).run({n: inputs[n] for n in input_names})
    with torch.no_grad():
        ref = module(*(torch.from_numpy(inputs[n]) for n in input_names))
    ref = (ref,) if isinstance(ref, torch.Tensor) else ref
    return {n: float(np.max(np.abs(ort_out[n] - r.numpy()))) for n, r in zip(output_names, ref)}


def _file_entry(path: Path, **extra) -> dict:
    return {"file": path.name, "sha256": file_sha256(path), **extra}


def export_model(cfg: ClipAdapterConfig, model: ClipAdapterModel, out_dir: Union[str, Path],
                 tokenizer_dir: Optional[Union[str, Path]] = None, prompts: Optional[Union[str, Path]] = None,
                 with_text: bool = True, tolerance: float = DEFAULT_TOLERANCE, opset: int = 17,
                 log=print) -> dict:
    """Write the export folder and return the manifest (with ``parity`` diffs and ``parity_ok``)."""
    from dfer_ros.clip_adapter.checkpoint import save_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    image_in, head_in = example_inputs(cfg)
    image_path, head_path = out / "image_tower.onnx", out / "temporal_head.onnx"

    log(f"exporting image tower -> {image_path}")
    tower = ImageTowerExport(model).eval()
    export_onnx(tower, image_in, image_path, IMAGE_INPUTS, IMAGE_OUTPUTS, opset)
    log(f"exporting temporal head -> {head_path}")
    head = HeadExport(model).eval()
    export_onnx(head, head_in, head_path, HEAD_INPUTS, HEAD_OUTPUTS, opset)

    diffs = {"image_tower": parity(image_path, tower, image_in, IMAGE_INPUTS, IMAGE_OUTPUTS),
             "temporal_head": parity(head_path, head, head_in, HEAD_INPUTS, HEAD_OUTPUTS)}
    ok = True
    for part, values in diffs.items():
        for name, diff in values.items():
            status = "ok" if diff <= tolerance else "TOO LARGE"
            ok &= diff <= tolerance
            log(f"parity {part}.{name}: max abs diff {diff:.3e} (tolerance {tolerance:.0e}) {status}")

    # self-contained folder: all weights (tower included) in torch_weights, so the exported config
    # needs no clip_weights path that may not exist where the folder is copied to
    import copy

    runtime_cfg = copy.deepcopy(cfg)
    runtime_cfg.clip_weights = None
    runtime_cfg.text.tokenizer = None
    runtime_cfg.text.prompts = None
    runtime_cfg.dump(out / "config.yaml")
    weights = save_checkpoint(out / "torch_weights.safetensors", model, runtime_cfg, include_frozen=True,
                              extra={"exported_from": cfg.source, "clip_weights": cfg.clip_weights})
    text_entry = None
    if with_text and cfg.text.enabled:
        text_entry = _export_text(cfg, out, tokenizer_dir, prompts, log)

    manifest = {
        "format": MANIFEST_FORMAT,
        "name": cfg.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": "config.yaml",
        "image_size": cfg.image_size,
        "face_scale": cfg.face_scale,
        "window": cfg.window,
        "embedding_dim": cfg.embedding_dim,
        "expression_labels": list(cfg.expression_labels),
        "au_names": list(cfg.au_names),
        "outputs": list(cfg.outputs),
        "image_tower": _file_entry(image_path, inputs=list(IMAGE_INPUTS), outputs=list(IMAGE_OUTPUTS)),
        "temporal_head": _file_entry(head_path, inputs=list(HEAD_INPUTS), outputs=list(HEAD_OUTPUTS)),
        "torch_weights": _file_entry(weights),
        "text": text_entry,
        "compound": {"enabled": cfg.compound.enabled, "method": cfg.compound.method},
        "parity": {"tolerance": tolerance, "max_abs_diff": diffs, "ok": bool(ok)},
        "versions": {"torch": torch.__version__, "opset": opset},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log(f"wrote {out / 'manifest.json'}")
    return manifest


def _export_text(cfg: ClipAdapterConfig, out: Path, tokenizer_dir, prompts, log) -> Optional[dict]:
    from dfer_ros.clip_adapter.text_prompts import load_prompt_sets, prompt_sets_for, text_embeddings_for

    folder = tokenizer_dir or cfg.text.tokenizer or cfg.clip_weights
    if not folder or not (Path(folder) / "vocab.json").is_file():
        log("text embeddings skipped: no tokenizer folder with vocab.json/merges.txt "
            "(pass --tokenizer or set text.tokenizer / clip_weights to the HF CLIP folder)")
        return None
    sets = load_prompt_sets(prompts) if prompts else prompt_sets_for(cfg)
    sets, emb = text_embeddings_for(cfg, folder, sets)
    path = out / "text_embeddings.npy"
    np.save(path, emb["weights"])
    labels_path = out / "text_labels.json"
    labels_path.write_text(json.dumps({
        "labels": [s.label for s in sets],
        "prompts": {s.label: {"positive": s.positive, "negative": s.negative} for s in sets},
        "negative_weight": cfg.text.negative_weight, "logit_scale": cfg.text.logit_scale}, indent=2))
    log(f"text embeddings for {len(sets)} classes -> {path}")
    return {**_file_entry(path), "labels_file": labels_path.name, "labels": [s.label for s in sets],
            "logit_scale": cfg.text.logit_scale, "negative_weight": cfg.text.negative_weight,
            "fusion_weight": cfg.text.fusion_weight}
