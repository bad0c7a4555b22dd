"""The inference-backend interface: named numpy tensors in, named numpy tensors out."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class BackendError(RuntimeError):
    """A backend cannot be created or run; the message says which file or library and why."""


class InferenceSession(ABC):
    """One loaded network (an ONNX file, a TensorRT engine or a torch module)."""

    backend_name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; inputs and outputs keyed by tensor name."""
