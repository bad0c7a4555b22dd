"""CLIP-adapter models at run time: an exported folder (``dfer export``) behind the FrameEncoder /
TemporalHead interface on any backend (onnxruntime, tensorrt, torch).

* encoder: image-tower session; crops (N, S, S, 3) uint8 RGB -> CLIP-normalised pixels -> (N, D),
  run in chunks of ``max_faces`` (the TensorRT profile's largest batch).
* head: temporal-head session over a batch of track windows; each window is padded at the end to
  the exported length with ``mask`` marking real frames, so 1..window frames all work.
* text: zero-shot scores from the exported class text matrix; fused with the head ("fuse", when the
  classes match), used alone ("zero_shot", any classes) or ignored ("off").
* compound: the 7 C-EXPR-DB classes from the basic probabilities (pairwise aggregation).

Imports no torch unless backend="torch".
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dfer_ros.backends.base import BackendError, InferenceSession
from dfer_ros.backends.engine_cache import file_sha256
from dfer_ros.backends.factory import create_session
from dfer_ros.clip_adapter.compound import CompoundAggregator
from dfer_ros.clip_adapter.preprocess import normalize_crops
from dfer_ros.clip_adapter.text_prompts import fuse_probabilities, softmax, zero_shot_logits
from dfer_ros.perception.model_interface import AffectModel, CropSpec, FrameEncoder, TemporalHead
from dfer_ros.perception.types import AffectEstimate
from dfer_ros.user_files import read_user_json

log = logging.getLogger(__name__)
MANIFEST_FORMAT = "dfer_ros.clip_export/1"
TEXT_MODES = ("auto", "off", "fuse", "zero_shot")


class ClipModelError(ValueError):
    """An exported model folder is missing, incomplete or changed since export; names the file."""


def read_manifest(model_dir: Union[str, Path], verify_hashes: bool = True) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise ClipModelError(f"{path}: not found; create the folder with dfer export")
    try:
        manifest = read_user_json(path)
    except ValueError as exc:
        raise ClipModelError(str(exc)) from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ClipModelError(f"{path}: format {manifest.get('format')!r} is not {MANIFEST_FORMAT!r}")
    for part in ("image_tower", "temporal_head", "torch_weights", "text"):
        entry = manifest.get(part)
        if not entry:
            continue
        file = model_dir / entry["file"]
        if not file.is_file():
            raise ClipModelError(f"{file}: listed in {path} but missing")
        if verify_hashes and file_sha256(file) != entry["sha256"]:
            raise ClipModelError(f"{file}: sha256 differs from {path} (changed since export); export again")
    return manifest


class ClipFrameEncoder(FrameEncoder):
    def __init__(self, session: InferenceSession, image_size: int, embedding_dim: int, face_scale: float = 1.25,
                 max_batch: int = 8):
        self.session = session
        self.crop_spec = CropSpec(size=image_size, face_scale=face_scale, color="rgb")
        self.embedding_dim = embedding_dim
        self.max_batch = max(1, max_batch)

    def encode(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        pixels = normalize_crops(crops, self.crop_spec.size)
        parts = [self.session.run({"pixel_values": pixels[i:i + self.max_batch]})["embeddings"]
                 for i in range(0, len(pixels), self.max_batch)]
        return np.concatenate(parts).astype(np.float32, copy=False)


class ClipTemporalHead(TemporalHead):
    def __init__(self, session: InferenceSession, expression_labels: Sequence[str], au_names: Sequence[str],
                 window: int, max_batch: int = 8, min_frames: int = 1,
                 text_labels: Optional[Sequence[str]] = None, text_weights: Optional[np.ndarray] = None,
                 logit_scale: float = 100.0, text_mode: str = "auto", fusion_weight: float = 0.0,
                 compound_method: Optional[str] = "sum", outputs: Sequence[str] = ("expression", "va", "au")):
        self.session = session
        self.outputs = tuple(outputs)
        self.expression_labels = tuple(expression_labels)
        self.au_names = tuple(au_names)
        self.max_frames = window
        self.min_frames = min_frames
        self.max_batch = max(1, max_batch)
        self.fusion_weight = fusion_weight
        self.logit_scale = logit_scale
        self.compound_method = compound_method
        self.set_text_classes(text_labels, text_weights, text_mode)

    def set_text_classes(self, labels: Optional[Sequence[str]], weights: Optional[np.ndarray], mode: str = "auto") -> None:
        """Swap the zero-shot classes at run time (e.g. text matrices computed with
        ``text_prompts.text_embeddings_for`` from a user prompt file)."""
        if mode not in TEXT_MODES:
            raise ValueError(f"text mode {mode!r} not one of {TEXT_MODES}")
        if labels is None or weights is None:
            if mode in ("fuse", "zero_shot"):
                raise ValueError(f"text mode {mode!r} needs text embeddings (export with a tokenizer)")
            mode = "off"
        elif mode == "auto":
            mode = "fuse" if self.fusion_weight > 0 and tuple(labels) == self.expression_labels else "off"
        elif mode == "fuse" and tuple(labels) != self.expression_labels:
            raise ValueError(f"cannot fuse zero-shot classes {list(labels)} with the head's {list(self.expression_labels)}")
        self.text_mode = mode
        self.text_labels = tuple(labels) if labels is not None else ()
        self.text_weights = None if weights is None else np.asarray(weights, np.float32)
        out_labels = self.text_labels if mode == "zero_shot" else self.expression_labels
        self._compound = (CompoundAggregator(out_labels, self.compound_method)
                          if self.compound_method and CompoundAggregator.supports(out_labels) else None)

    def _pack(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        dim = windows[0].shape[1]
        emb = np.zeros((len(windows), self.max_frames, dim), np.float32)
        mask = np.zeros((len(windows), self.max_frames), bool)
        lengths = []
        for i, w in enumerate(windows):
            w = np.asarray(w, np.float32)[-self.max_frames:]
            if w.ndim != 2 or w.shape[1] != dim or len(w) == 0:
                raise ValueError(f"window {i} has shape {w.shape}; expected (1..{self.max_frames}, {dim})")
            emb[i, : len(w)] = w
            mask[i, : len(w)] = True
            lengths.append(len(w))
        return emb, mask, lengths

    def raw_outputs(self, windows: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The head session's outputs for a list of windows (batched by ``max_batch``)."""
        emb, mask, _ = self._pack(windows)
        parts = [self.session.run({"embeddings": emb[i:i + self.max_batch], "mask": mask[i:i + self.max_batch]})
                 for i in range(0, len(emb), self.max_batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def predict(self, windows: list[np.ndarray]) -> list[AffectEstimate]:
        if not windows:
            return []
        lengths = [min(len(w), self.max_frames) for w in windows]
        out = self.raw_outputs(windows)
        labels = self.expression_labels
        if self.text_mode == "off":
            probs = softmax(out["expression_logits"])
        else:
            zs = zero_shot_logits(out["clip_embedding"], self.text_weights, self.logit_scale)
            if self.text_mode == "fuse":
                probs = fuse_probabilities(out["expression_logits"], zs, self.fusion_weight)
            else:
                probs, labels = softmax(zs), self.text_labels
        au = 1.0 / (1.0 + np.exp(-out["au_logits"]))
        compound = self._compound(probs) if self._compound is not None else None
        results = []
        for i, n in enumerate(lengths):
            va = out["valence_arousal"][i] if "va" in self.outputs else (np.nan, np.nan)
            has_au = "au" in self.outputs
            results.append(AffectEstimate(
                expression_labels=tuple(labels), expression_probs=probs[i].astype(np.float32),
                valence=float(va[0]), arousal=float(va[1]),
                # more frames in the window: more support
                va_confidence=float(n / self.max_frames) if "va" in self.outputs else 0.0,
                au_names=self.au_names if has_au else (),
                au_probs=au[i].astype(np.float32) if has_au else np.zeros(0, np.float32),
                compound_labels=self._compound.labels if compound is not None else (),
                compound_probs=compound[i] if compound is not None else np.zeros(0, np.float32)))
        return results


def _torch_model_sessions(config: Union[str, Path], checkpoint: Union[str, Path, None], device: str, fp16: bool):
    """(config, image-tower session, head session): the PyTorch model rebuilt from its config (+ weights),
    its two halves wrapped as torch sessions. Shared by exported folders on torch and config YAMLs."""
    from dfer_ros.clip_adapter.checkpoint import load_checkpoint
    from dfer_ros.clip_adapter.config import load_config
    from dfer_ros.clip_adapter.export import HEAD_INPUTS, HEAD_OUTPUTS, IMAGE_INPUTS, IMAGE_OUTPUTS, HeadExport, ImageTowerExport
    from dfer_ros.clip_adapter.model import ClipAdapterModel

    cfg = load_config(config)
    model = ClipAdapterModel(cfg)
    if checkpoint:
        load_checkpoint(checkpoint, model)
    encoder = create_session("torch", ImageTowerExport(model), device=device, fp16=fp16,
                             input_names=IMAGE_INPUTS, output_names=IMAGE_OUTPUTS)
    head = create_session("torch", HeadExport(model), device=device, fp16=fp16,
                          input_names=HEAD_INPUTS, output_names=HEAD_OUTPUTS)
    return cfg, encoder, head


def _assemble(encoder_session, head_session, *, name: str, backend: str, image_size: int, embedding_dim: int,
              face_scale: float, expression_labels, au_names, window: int, max_faces: int, min_frames: int,
              text_labels, text_weights, logit_scale: float, text_mode: str, fusion_weight: float,
              compound_method: Optional[str], outputs) -> AffectModel:
    """Encoder and head around two sessions: the one assembly both loaders share."""
    encoder = ClipFrameEncoder(encoder_session, image_size, embedding_dim, face_scale, max_faces)
    head = ClipTemporalHead(head_session, expression_labels, au_names, window, max_batch=max_faces,
                            min_frames=min_frames, text_labels=text_labels, text_weights=text_weights,
                            logit_scale=logit_scale, text_mode=text_mode, fusion_weight=fusion_weight,
                            compound_method=compound_method, outputs=outputs)
    return AffectModel(encoder=encoder, head=head, name=f"clip:{name}", backend=backend)


def load_clip_model(model_dir: Union[str, Path], backend: str = "onnxruntime", device: str = "cpu", fp16: bool = False,
                    max_faces: int = 8, cache_dir: Union[str, Path, None] = None, text_mode: str = "auto",
                    fusion_weight: Optional[float] = None, min_frames: int = 1, verify_hashes: bool = True,
                    intra_op_threads: int = 0) -> AffectModel:
    """AffectModel from an exported folder on the named backend (see module docstring)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, verify_hashes=verify_hashes)
    if backend == "torch":
        _, encoder_session, head_session = _torch_model_sessions(
            model_dir / manifest["config"], model_dir / manifest["torch_weights"]["file"], device, fp16)
    elif backend in ("onnxruntime", "tensorrt"):
        kw = dict(device=device, fp16=fp16, max_batch=max_faces, cache_dir=cache_dir, intra_op_threads=intra_op_threads)
        encoder_session = create_session(backend, model_dir / manifest["image_tower"]["file"], **kw)
        head_session = create_session(backend, model_dir / manifest["temporal_head"]["file"], **kw)
    else:
        raise BackendError(f"unknown backend {backend!r}; choose onnxruntime, tensorrt or torch")
    text = manifest.get("text")
    labels = weights = None
    scale, fusion = 100.0, 0.0
    if text:
        weights = np.load(model_dir / text["file"], allow_pickle=False)
        labels, scale, fusion = text["labels"], float(text["logit_scale"]), float(text["fusion_weight"])
    if fusion_weight is not None:
        fusion = fusion_weight
    compound = manifest.get("compound") or {}
    model = _assemble(encoder_session, head_session, name=manifest["name"], backend=backend,
                      image_size=manifest["image_size"], embedding_dim=manifest["embedding_dim"],
                      face_scale=manifest.get("face_scale", 1.25), expression_labels=manifest["expression_labels"],
                      au_names=manifest["au_names"], window=manifest["window"], max_faces=max_faces,
                      min_frames=min_frames, text_labels=labels, text_weights=weights, logit_scale=scale,
                      text_mode=text_mode, fusion_weight=fusion,
                      compound_method=compound.get("method", "sum") if compound.get("enabled", True) else None,
                      outputs=manifest.get("outputs", ("expression", "va", "au")))
    log.info("CLIP-adapter model %s on %s (text mode %s)", manifest["name"], backend, model.head.text_mode)
    return model


def load_clip_model_from_config(config: Union[str, Path], checkpoint: Union[str, Path, None] = None,
                                device: str = "cpu", fp16: bool = False, max_faces: int = 8,
                                tokenizer: Union[str, Path, None] = None, text_mode: str = "auto",
                                fusion_weight: Optional[float] = None, min_frames: int = 1) -> AffectModel:
    """torch backend straight from a config YAML (+ training checkpoint), no export step. Text
    embeddings are computed here when a tokenizer folder is known (argument, text.tokenizer, clip_weights)."""
    cfg, encoder_session, head_session = _torch_model_sessions(config, checkpoint, device, fp16)
    labels = weights = None
    folder = tokenizer or cfg.text.tokenizer or cfg.clip_weights
    if cfg.text.enabled and folder and (Path(folder) / "vocab.json").is_file():
        from dfer_ros.clip_adapter.text_prompts import text_embeddings_for

        sets, emb = text_embeddings_for(cfg, folder)
        labels, weights = [s.label for s in sets], emb["weights"]
    return _assemble(encoder_session, head_session, name=cfg.name, backend="torch", image_size=cfg.image_size,
                     embedding_dim=cfg.embedding_dim, face_scale=cfg.face_scale,
                     expression_labels=cfg.expression_labels, au_names=cfg.au_names, window=cfg.window,
                     max_faces=max_faces, min_frames=min_frames, text_labels=labels, text_weights=weights,
                     logit_scale=cfg.text.logit_scale, text_mode=text_mode,
                     fusion_weight=cfg.text.fusion_weight if fusion_weight is None else fusion_weight,
                     compound_method=cfg.compound.method if cfg.compound.enabled else None, outputs=cfg.outputs)


def build_clip_model(backend: str = "onnxruntime", model_dir: Union[str, Path, None] = None,
                     config: Union[str, Path, None] = None, checkpoint: Union[str, Path, None] = None,
                     **options) -> AffectModel:
    """The "clip" entry of ``estimators.factory``: an exported folder (``model_dir``, any backend) or,
    for the torch backend, a config YAML and an optional checkpoint."""
    if model_dir is not None:
        return load_clip_model(model_dir, backend=backend, **options)
    if config is None:
        raise ValueError("the clip model needs model_dir=<dfer export folder> or config=<models/*.yaml>")
    if backend != "torch":
        raise ValueError(f"backend {backend!r} runs exported models: run dfer export --model {config} "
                         f"--checkpoint ... --out DIR and pass model_dir=DIR (config+checkpoint work on 'torch')")
    return load_clip_model_from_config(config, checkpoint=checkpoint, **options)
