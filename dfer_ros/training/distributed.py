"""One training process per device under ``torchrun``: the process group, this process's device and
the few collectives the trainer needs.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Without those variables a run is
a plain single process and nothing here touches ``torch.distributed``, so the same code and the same
YAML run on one device or many. The backend follows the device: ``nccl`` on CUDA, ``gloo`` on CPU.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
import torch

log = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def resolve_device(name: str) -> torch.device:
    """The device of a single-process run: ``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return dev


class DistributedSetupError(RuntimeError):
    """The device setting does not fit a torchrun launch (the message says what to change)."""


def launched_by_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    return all(k in env for k in TORCHRUN_VARIABLES)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass
class DistContext:
    """Where this process sits in a run; a single process is rank 0 of 1 without a process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: Optional[str] = None  # None: no process group (a plain single-process run)

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs, plots and prints; the others only compute."""
        return self.rank == 0

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def sum_tensor(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over all processes (the input itself when not distributed)."""
        if not self.enabled:
            return values
        buf = values.detach().to(self._comm_device()).clone()
        torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
        return buf.to(values.device)

    def sum_floats(self, values: dict[str, float]) -> dict[str, float]:
        """Sum of named floats over all processes (float64); every process must pass the same keys."""
        if not self.enabled:
            return dict(values)
        keys = sorted(values)
        total = self.sum_tensor(torch.tensor([values[k] for k in keys], dtype=torch.float64))
        return {k: float(v) for k, v in zip(keys, total.tolist())}

    def assemble_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows each owned by exactly one process (the others hold zeros there) summed into the whole
        array on every process: an all_reduce that adds each row to zeros only, so it is exact."""
        if not self.enabled:
            return rows
        return self.sum_tensor(torch.from_numpy(np.ascontiguousarray(rows))).numpy()

    def gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` of every process, by rank (picklable objects; used for the small RNG states)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        """Tear the process group down (end of a torchrun process)."""
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        self.backend = None


def init_distributed(device_name: str = "auto", env: Mapping[str, str] = os.environ,
                     timeout_s: float = 1800.0) -> DistContext:
    """The context of this process: a process group when started by torchrun, else a single process.

    Under torchrun each process takes ``cuda:LOCAL_RANK`` (``device`` auto or cuda) or the CPU
    (``device: cpu``, or no CUDA); an explicit ``cuda:N`` would put every process on one GPU and is an error.
    """
    if not launched_by_torchrun(env):
        return DistContext(device=resolve_device(device_name))
    rank, world, local = (int(env[k]) for k in TORCHRUN_VARIABLES)
    if device_name == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    elif device_name in ("cpu", "cuda"):
        kind = device_name
    else:
        raise DistributedSetupError(f"device {device_name!r}: under torchrun each process takes the device of its "
                           "LOCAL_RANK; set device to auto, cuda or cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DistributedSetupError("device cuda requested but CUDA is not available")
        if local >= torch.cuda.device_count():
            raise DistributedSetupError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                               "start at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = backend_for(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world,
                                             timeout=datetime.timedelta(seconds=timeout_s))
    else:
        backend = torch.distributed.get_backend()
    if rank == 0:
        log.info("distributed run: %d process(es), backend %s, device %s on rank 0", world, backend, device)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device, backend=backend)
