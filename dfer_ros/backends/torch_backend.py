"""PyTorch backend: runs an ``nn.Module`` on CPU or CUDA (fp16 on CUDA) behind the session interface.

The module is called with keyword arguments named like the session inputs and returns either a
dict keyed by output name or a tuple in ``output_names`` order (the export wrappers do the latter,
so the same module feeds ONNX export and this backend). This is the only backend importing torch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dfer_ros.backends.base import BackendError, InferenceSession


class TorchSession(InferenceSession):
    backend_name = "torch"

    def __init__(self, module, input_names: Sequence[str], output_names: Sequence[str], device: str = "cpu",
                 fp16: bool = False):
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"torch backend: device {device!r} asked for but CUDA is not available")
        if fp16 and not device.startswith("cuda"):
            raise BackendError("torch backend: fp16 runs on CUDA only; use fp16=False on CPU")
        self._torch = torch
        self.device = torch.device(device)
        self.fp16 = fp16
        self.module = module.to(self.device).eval()
        if fp16:
            self.module = self.module.half()
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BackendError(f"torch backend: missing inputs {missing}")
        tensors = {}
        for name in self.input_names:
            t = torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device)
            if self.fp16 and t.is_floating_point():
                t = t.half()
            tensors[name] = t
        with torch.inference_mode():
            out = self.module(**tensors)
        if isinstance(out, dict):
            out = tuple(out[n] for n in self.output_names)
        elif isinstance(out, torch.Tensor):
            out = (out,)
        return {n: t.float().cpu().numpy() for n, t in zip(self.output_names, out)}
