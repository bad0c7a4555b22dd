"""TensorRT 10 backend: engines built from ONNX (FP16, one optimization profile over batch
1..max_batch), cached by ONNX hash + TensorRT version + GPU name (see ``engine_cache``), run with
``execute_async_v3`` on device buffers from torch CUDA tensors or, without torch, cuda-python.

Nothing here is imported unless the tensorrt backend is asked for; ``tensorrt_status()`` tells why it
cannot run (no tensorrt package, no CUDA device) so callers can refuse with a clear message.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np

from dfer_ros.backends.base import BackendError, InferenceSession
from dfer_ros.backends.engine_cache import EngineCache, EngineKey, file_sha256

log = logging.getLogger(__name__)


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result, what: str):
    err, *rest = result
    if int(err) != 0:
        raise BackendError(f"CUDA call {what} failed with error {err}")
    return rest[0] if len(rest) == 1 else tuple(rest)


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): TensorRT importable and a CUDA device present."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        return False, f"the tensorrt Python package is not installed ({exc}); install TensorRT 10 on a CUDA machine"
    try:
        name = gpu_name()
    except BackendError as exc:
        return False, str(exc)
    return True, f"TensorRT {trt.__version__} on {name}"


def gpu_name(device_index: int = 0) -> str:
    """Name of the CUDA device (via torch when importable, else cuda-python); BackendError if none."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device_index)
        raise BackendError("no CUDA device is available (torch.cuda.is_available() is False)")
    except ImportError:
        pass
    try:
        cudart = _cudart()
    except ImportError as exc:
        raise BackendError("neither torch nor cuda-python is importable to reach the GPU") from exc
    count = _check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if count < 1:
        raise BackendError("no CUDA device is available")
    props = _check(cudart.cudaGetDeviceProperties(device_index), "cudaGetDeviceProperties")
    name = props.name
    return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)


def build_engine(onnx_path: Union[str, Path], fp16: bool = True, max_batch: int = 8, opt_batch: Optional[int] = None,
                 workspace_bytes: int = 2 << 30) -> bytes:
    """Serialized engine for ``onnx_path``; the first dimension of every input is the batch (profile
    1 / opt / max_batch), all other dimensions must be static in the ONNX file."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    onnx_path = Path(onnx_path)
    if not parser.parse_from_file(str(onnx_path)):  # from the file: external-data ONNX files work too
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    opt = opt_batch or max(1, min(max_batch, 4))
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if any(d < 0 for d in dims[1:]):
            raise BackendError(f"{onnx_path}: input {tensor.name} has dynamic dims other than the batch: {dims}")
        rest = dims[1:]
        profile.set_shape(tensor.name, [1] + rest, [opt] + rest, [max_batch] + rest)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    return bytes(blob)


class TensorRTSession(InferenceSession):
    """One deserialized engine; inputs/outputs copied through device buffers on a private stream."""

    backend_name = "tensorrt"

    def __init__(self, engine_blob: bytes, source: str = "<engine>"):
        import tensorrt as trt

        self._trt = trt
        self.source = source
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(engine_blob)
        if self.engine is None:
            raise BackendError(f"TensorRT cannot deserialize the engine {source} (other TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = tuple(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        try:
            import torch

            self._torch = torch
            self._stream = torch.cuda.Stream()
        except ImportError:
            self._torch = None
            self._cudart = _cudart()
            self._stream = _check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _shapes(self, inputs: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        for name in self.input_names:
            if not self.context.set_input_shape(name, tuple(inputs[name].shape)):
                raise BackendError(f"{self.source}: input {name} shape {inputs[name].shape} is outside the engine profile")
        return {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BackendError(f"{self.source}: missing inputs {missing}")
        arrays = {n: np.ascontiguousarray(inputs[n], dtype=self._dtypes[n]) for n in self.input_names}
        out_shapes = self._shapes(arrays)
        if self._torch is not None:
            return self._run_torch(arrays, out_shapes)
        return self._run_cudart(arrays, out_shapes)

    def _run_torch(self, arrays, out_shapes):
        torch = self._torch
        keep = []
        with torch.cuda.stream(self._stream):
            for name, arr in arrays.items():
                t = torch.from_numpy(arr).cuda(non_blocking=False)
                keep.append(t)
                self.context.set_tensor_address(name, t.data_ptr())
            outs = {}
            for name, shape in out_shapes.items():
                t = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, self._dtypes[name])).dtype, device="cuda")
                outs[name] = t
                self.context.set_tensor_address(name, t.data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError(f"{self.source}: execute_async_v3 failed")
        self._stream.synchronize()
        return {n: t.float().cpu().numpy() for n, t in outs.items()}

    def _run_cudart(self, arrays, out_shapes):
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        allocations = []
        try:
            for name, arr in arrays.items():
                ptr = _check(cudart.cudaMalloc(max(arr.nbytes, 1)), "cudaMalloc")
                allocations.append(ptr)
                _check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self._stream), "cudaMemcpyAsync")
                self.context.set_tensor_address(name, int(ptr))
            host = {}
            device = {}
            for name, shape in out_shapes.items():
                host[name] = np.empty(shape, self._dtypes[name])
                ptr = _check(cudart.cudaMalloc(max(host[name].nbytes, 1)), "cudaMalloc")
                allocations.append(ptr)
                device[name] = ptr
                self.context.set_tensor_address(name, int(ptr))
            if not self.context.execute_async_v3(int(self._stream)):
                raise BackendError(f"{self.source}: execute_async_v3 failed")
            for name, arr in host.items():
                _check(cudart.cudaMemcpyAsync(arr.ctypes.data, device[name], arr.nbytes, d2h, self._stream),
                       "cudaMemcpyAsync")
            _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
            return {n: a.astype(np.float32) for n, a in host.items()}
        finally:
            for ptr in allocations:
                cudart.cudaFree(ptr)


def engine_for(onnx_path: Union[str, Path], cache_dir: Union[str, Path, None] = None, fp16: bool = True,
               max_batch: int = 8) -> Path:
    """Cached engine path for ``onnx_path``, built (and cached) when no valid one exists."""
    import tensorrt as trt

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BackendError(f"ONNX model file not found: {onnx_path}")
    cache = EngineCache(cache_dir or onnx_path.parent / "engines")
    key = EngineKey(file_sha256(onnx_path), trt.__version__, gpu_name(), bool(fp16), int(max_batch))
    found = cache.lookup(onnx_path, key)
    if found is not None:
        return found
    log.info("building TensorRT engine for %s (fp16=%s, batch 1..%d); this takes a while", onnx_path, fp16, max_batch)
    return cache.store(onnx_path, key, build_engine(onnx_path, fp16=fp16, max_batch=max_batch))


def open_tensorrt_session(onnx_path: Union[str, Path], cache_dir: Union[str, Path, None] = None, fp16: bool = True,
                          max_batch: int = 8) -> TensorRTSession:
    usable, reason = tensorrt_status()
    if not usable:
        raise BackendError(f"tensorrt backend unavailable: {reason}")
    engine = engine_for(onnx_path, cache_dir, fp16, max_batch)
    return TensorRTSession(engine.read_bytes(), source=str(engine))
