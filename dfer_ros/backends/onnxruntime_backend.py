"""ONNX Runtime backend: CPU by default, CUDA when the provider is installed and asked for."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from dfer_ros.backends.base import BackendError, InferenceSession


class OnnxRuntimeSession(InferenceSession):
    backend_name = "onnxruntime"

    def __init__(self, model: Union[str, Path, bytes], providers: Sequence[str] = ("CPUExecutionProvider",),
                 intra_op_threads: int = 0):
        import onnxruntime as ort

        available = ort.get_available_providers()
        chosen = [p for p in providers if p in available]
        if not chosen:
            raise BackendError(f"none of the ONNX Runtime providers {list(providers)} is available (have {available})")
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        source = model if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise BackendError(f"ONNX model file not found: {model}")
        try:
            self._session = ort.InferenceSession(source, sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            where = "in-memory model" if isinstance(model, bytes) else str(model)
            raise BackendError(f"ONNX Runtime cannot load {where}: {exc}") from exc
        self.providers = tuple(self._session.get_providers())
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(list(self.output_names), inputs)
        return dict(zip(self.output_names, outputs))
