"""Exact, pickle-free training state for resuming: optimizer, scheduler, AMP scaler and RNG states.

Tensors (optimizer moments, torch RNG states) go to a safetensors file; everything else (param
groups, scheduler counters, python/numpy RNG states, epoch, history) to JSON beside it. Python's
json writes floats with repr, so they round-trip bit-exactly.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
FORMAT = "dfer_ros.training/1"


class TrainStateError(ValueError):
    """A training state folder is missing or inconsistent; the message names the file."""


def _tensor_dict(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        plain_st = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                plain_st[k] = v
        plain["state"][str(idx)] = plain_st
    return tensors, plain


def save_train_state(folder, optimizer: torch.optim.Optimizer, scheduler, scaler: Optional[torch.amp.GradScaler],
                     epoch: int, extra: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, optim_plain = _tensor_dict(optimizer)
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(folder / STATE_TENSORS), metadata={"format": FORMAT})
    np_state = np.random.get_state()
    py_state = random.getstate()
    doc = {
        "format": FORMAT,
        "epoch": int(epoch),
        "optimizer": optim_plain,
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng_numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        **extra,
    }
    tmp = folder / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(folder / STATE_JSON)


def load_train_state(folder, optimizer: torch.optim.Optimizer, scheduler,
                     scaler: Optional[torch.amp.GradScaler]) -> dict[str, Any]:
    """Restore everything saved by save_train_state; returns the JSON document (epoch, history, ...)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    jpath, tpath = folder / STATE_JSON, folder / STATE_TENSORS
    for p in (jpath, tpath):
        if not p.is_file():
            raise TrainStateError(f"{p}: training state file missing (resume needs a folder written by dfer-train)")
    doc = json.loads(jpath.read_text())
    if doc.get("format") != FORMAT:
        raise TrainStateError(f"{jpath}: format {doc.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(str(tpath))
    plain = doc["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for idx, st in plain["state"].items():
        state[int(idx)] = dict(st)
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = t
    try:
        optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise TrainStateError(f"{tpath}: optimizer state does not fit this model ({exc})") from exc
    scheduler.load_state_dict({**scheduler.state_dict(), **doc["scheduler"]})
    if scaler is not None and scaler.is_enabled() and doc.get("scaler"):
        scaler.load_state_dict(doc["scaler"])
    torch.set_rng_state(tensors["rng.torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    n = doc["rng_numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = doc["rng_python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    return doc
