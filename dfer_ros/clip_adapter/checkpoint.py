"""Safe loading and saving of weights.

* ``load_clip_weights``: real CLIP weights in the Hugging Face ``openai/clip-vit-*`` layout (a folder
  with ``model.safetensors`` or ``pytorch_model.bin``, or one such file), or an OpenAI-style state
  dict (``visual.*`` keys, converted); the key names and shapes are checked against the configured
  tower so a ViT-B/32 file is never half-loaded into a ViT-B/16 config.
* ``save_checkpoint`` / ``load_checkpoint``: our trained weights (adapters, LoRA, head; plus the tower
  when it was randomly initialised) as safetensors, with the config YAML and a JSON of extras beside.

Nothing is unpickled except through ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from dfer_ros.clip_adapter.config import ClipAdapterConfig
from dfer_ros.user_files import read_user_json

FORMAT = "dfer_ros.clip_adapter/1"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, truncated or does not fit the model; names the file and why."""


def _resolve_weights_file(path: Union[str, Path]) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in HF_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        if (path / "model.safetensors.index.json").is_file():
            raise CheckpointError(f"{path}: sharded checkpoints are not supported; merge into model.safetensors")
        raise CheckpointError(f"{path}: folder holds none of {list(HF_WEIGHT_FILES)}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def read_state_dict(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Read a safetensors file or a weights-only torch file into CPU tensors; clear errors otherwise."""
    file = _resolve_weights_file(path)
    if file.stat().st_size == 0:
        raise CheckpointError(f"{file}: file is empty")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / torch raise several types for truncated or foreign files
        raise CheckpointError(f"{file}: cannot be read (truncated or not a weights file): {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file}: does not hold a flat mapping of names to tensors")
    return state


def _convert_openai(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip image-tower keys (``visual.*``) to HF ``vision_model.*`` names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith("visual."):
            continue
        k = key[len("visual."):]
        if k == "class_embedding":
            out["vision_model.embeddings.class_embedding"] = value
        elif k == "positional_embedding":
            out["vision_model.embeddings.position_embedding.weight"] = value
        elif k == "conv1.weight":
            out["vision_model.embeddings.patch_embedding.weight"] = value
        elif k.startswith("ln_pre."):
            out["vision_model.pre_layrnorm." + k.split(".", 1)[1]] = value
        elif k.startswith("ln_post."):
            out["vision_model.post_layernorm." + k.split(".", 1)[1]] = value
        elif k == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif k.startswith("transformer.resblocks."):
            parts = k.split(".")
            i, rest = parts[2], ".".join(parts[3:])
            pre = f"vision_model.encoder.layers.{i}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{pre}self_attn.{name}.{kind}"] = chunk.contiguous()
            else:
                mapping = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                           "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
                mod, param = rest.rsplit(".", 1)
                if mod in mapping:
                    out[f"{pre}{mapping[mod]}.{param}"] = value
    return out


def _select(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    if part == "vision":
        if any(k.startswith("visual.") for k in state):
            return _convert_openai(state)
        picked = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}
        if not picked:  # a bare CLIPVisionModel state dict (transformers 5 names have no prefix)
            picked = {"vision_model." + k: v for k, v in state.items()
                      if k.startswith(("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm."))}
        return picked
    if part == "text":
        return {k: v for k, v in state.items() if k.startswith(("text_model.", "text_projection."))}
    raise ValueError(f"part must be 'vision' or 'text', not {part!r}")


def load_clip_weights(module: nn.Module, path: Union[str, Path], part: str = "vision") -> None:
    """Load real CLIP weights into a ``CLIPVisionModelWithProjection`` (part="vision") or
    ``CLIPTextModelWithProjection`` (part="text"); every parameter must be present with its shape."""
    file = _resolve_weights_file(path)
    state = {k: v for k, v in _select(read_state_dict(file), part).items() if not k.endswith("position_ids")}
    expected = module.state_dict()
    if not state:
        raise CheckpointError(f"{file}: no CLIP {part} weights found (expected keys like "
                              f"'{next(iter(expected))}'); is this a CLIP checkpoint?")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {wrong[:3]} (the config's tower sizes do not "
                        f"match this checkpoint: pick the models/*.yaml of the same ViT variant)")
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    if problems:
        raise CheckpointError(f"{file}: CLIP {part} weights do not fit the configured model: " + "; ".join(problems))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_suffix(".yaml"), path.with_suffix(".json")


def save_checkpoint(path: Union[str, Path], model: nn.Module, cfg: ClipAdapterConfig,
                    extra: Optional[dict[str, Any]] = None, include_frozen: Optional[bool] = None) -> Path:
    """Write ``path`` (.safetensors) with the trainable weights, ``<stem>.yaml`` (config) and
    ``<stem>.json`` (``extra``: epoch, metrics, ...). The frozen tower is included when the config
    has no ``clip_weights`` to rebuild it from (``include_frozen=None``), so a checkpoint is complete."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    full = cfg.clip_weights is None if include_frozen is None else include_frozen
    params = dict(model.named_parameters())
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()
               if full or (name in params and params[name].requires_grad)}
    save_file(tensors, str(path), metadata={"format": FORMAT, "config_name": cfg.name,
                                             "contents": "full" if full else "trainable"})
    yaml_path, json_path = _sidecars(path)
    cfg.dump(yaml_path)
    json_path.write_text(json.dumps(extra or {}, indent=2, default=str))
    return path


def load_checkpoint(path: Union[str, Path], model: nn.Module) -> dict[str, Any]:
    """Load a ``save_checkpoint`` file into ``model`` with strict name and shape checks; returns the extras.

    Every trainable parameter of ``model`` must be in the file (else the file was written for another
    adapter/head configuration), and every tensor in the file must exist in ``model`` with its shape.
    """
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():  # a training output folder (best/, last/)
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read (truncated or not a safetensors file): {exc}") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dfer_ros CLIP-adapter checkpoint (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}); real CLIP weights go in the config's clip_weights")
    state = read_state_dict(path)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in state)
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {wrong[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} key(s) the model lacks, e.g. {unexpected[:3]}")
    if missing:
        problems.append(f"{len(missing)} trainable weight(s) missing, e.g. {missing[:3]}")
    if problems:
        raise CheckpointError(f"{path}: does not fit the model (config {meta.get('config_name')!r}): " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    json_path = _sidecars(path)[1]
    return read_user_json(json_path, finite=False) if json_path.is_file() else {}
