"""Pick a backend by name: ``create_session("onnxruntime" | "tensorrt" | "torch", model, ...)``.

``model`` is an ONNX file for onnxruntime and tensorrt, an ``nn.Module`` for torch. Each backend is
imported only when asked for, so choosing onnxruntime never imports torch or tensorrt.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from dfer_ros.backends.base import BackendError, InferenceSession

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt", "torch")


def create_session(backend: str, model: Union[str, Path, Any], *, device: str = "cpu", fp16: bool = False,
                   max_batch: int = 8, cache_dir: Union[str, Path, None] = None, intra_op_threads: int = 0,
                   input_names: Optional[Sequence[str]] = None,
                   output_names: Optional[Sequence[str]] = None) -> InferenceSession:
    """One loaded network on the named backend.

    onnxruntime: CPU; ``device="cuda"`` puts the CUDA provider first (falls back to CPU if absent).
    tensorrt: engine from the ONNX file (cached in ``cache_dir``, default ``<onnx dir>/engines``),
      batch profile 1..``max_batch``, FP16 when ``fp16``.
    torch: ``model`` is a module taking ``input_names`` keyword tensors, returning ``output_names``.
    """
    if backend == "onnxruntime":
        from dfer_ros.backends.onnxruntime_backend import OnnxRuntimeSession

        providers = (("CUDAExecutionProvider", "CPUExecutionProvider") if device.startswith("cuda")
                     else ("CPUExecutionProvider",))
        session = OnnxRuntimeSession(model, providers=providers, intra_op_threads=intra_op_threads)
        if device.startswith("cuda") and "CUDAExecutionProvider" not in session.providers:
            log.warning("onnxruntime: CUDA asked for but the CUDA provider is not available; running %s on CPU", model)
        return session
    if backend == "tensorrt":
        from dfer_ros.backends.tensorrt_backend import open_tensorrt_session

        return open_tensorrt_session(model, cache_dir=cache_dir, fp16=fp16, max_batch=max_batch)
    if backend == "torch":
        from dfer_ros.backends.torch_backend import TorchSession

        if input_names is None or output_names is None:
            raise BackendError("torch backend needs input_names and output_names for the module")
        return TorchSession(model, input_names, output_names, device=device, fp16=fp16)
    raise BackendError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
