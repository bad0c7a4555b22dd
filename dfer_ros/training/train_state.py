"""Exact, pickle-free training state for resuming: optimizer, scheduler, AMP scaler and RNG states.

Tensors (optimizer moments, torch RNG states) go to a safetensors file; everything else (param
groups, scheduler counters, python/numpy RNG states, epoch, history) to JSON beside it. Python's
json writes floats with repr, so they round-trip bit-exactly. A distributed run saves the RNG
states of every process (rank 0 under the single-process names, rank r under ``rng.rank<r>.*`` and
``rng_ranks``): a process's torch RNG drives its dropout masks, so an exact resume needs each one back.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from dfer_ros.user_files import read_user_json

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


def capture_rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and python RNG states."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {"torch_cpu": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    cuda = state.get("cuda") or []
    if torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def save_train_state(folder, optimizer: torch.optim.Optimizer, scheduler, scaler: Optional[torch.amp.GradScaler],
                     epoch: int, extra: dict[str, Any], rng_states: Optional[list[dict[str, Any]]] = None) -> None:
    """Write the state; ``rng_states`` holds every process's ``capture_rng_state()`` by rank (default:
    this process's only)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng_states = rng_states or [capture_rng_state()]
    tensors, optim_plain = _tensor_dict(optimizer)
    ranks_plain = []
    for r, st in enumerate(rng_states):
        prefix = "rng." if r == 0 else f"rng.rank{r}."
        tensors[prefix + "torch_cpu"] = st["torch_cpu"]
        for i, c in enumerate(st["cuda"]):
            tensors[f"{prefix}cuda.{i}"] = c
        if r:
            ranks_plain.append({"numpy": st["numpy"], "python": st["python"]})
    save_file(tensors, str(folder / STATE_TENSORS), metadata={"format": FORMAT})
    doc = {
        "format": FORMAT,
        "epoch": int(epoch),
        "optimizer": optim_plain,
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng_numpy": rng_states[0]["numpy"],
        "rng_python": rng_states[0]["python"],
        "world_size": len(rng_states),
        "rng_ranks": ranks_plain,
        **extra,
    }
    tmp = folder / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(folder / STATE_JSON)


def load_train_state(folder, optimizer: torch.optim.Optimizer, scheduler,
                     scaler: Optional[torch.amp.GradScaler], rank: int = 0) -> dict[str, Any]:
    """Restore everything saved by save_train_state, the RNG states of process ``rank``; returns the
    JSON document (epoch, history, ...) with ``rng_restored`` False when the state has no RNG states
    of that rank (resumed on more processes than it was saved from)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    jpath, tpath = folder / STATE_JSON, folder / STATE_TENSORS
    for p in (jpath, tpath):
        if not p.is_file():
            raise TrainStateError(f"{p}: training state file missing (resume needs a folder written by dfer train)")
    try:
        doc = read_user_json(jpath, finite=False)  # a best score starts at -Infinity
    except ValueError as exc:
        raise TrainStateError(str(exc)) from exc
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
    prefix = "rng." if rank == 0 else f"rng.rank{rank}."
    doc["rng_restored"] = prefix + "torch_cpu" in tensors
    if doc["rng_restored"]:
        plain = {"numpy": doc["rng_numpy"], "python": doc["rng_python"]} if rank == 0 else doc["rng_ranks"][rank - 1]
        cuda_keys = sorted((k for k in tensors if k.startswith(prefix + "cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        restore_rng_state({"torch_cpu": tensors[prefix + "torch_cpu"], "cuda": [tensors[k] for k in cuda_keys],
                           **plain})
    return doc
