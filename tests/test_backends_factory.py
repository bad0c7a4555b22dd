"""Backends behind one interface: selection by name, torch and onnxruntime sessions, the engine cache
(stale engines never loaded) and the TensorRT refusal where it cannot run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dfer_ros.backends.base import BackendError
from dfer_ros.backends.engine_cache import EngineCache, EngineKey, file_sha256
from dfer_ros.backends.factory import BACKENDS, create_session


class TwoOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, mask):
        return self.lin(x), mask.float().sum(-1, keepdim=True)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "two_out.onnx"
    torch.manual_seed(0)
    module = TwoOut().eval()
    torch.onnx.export(module, (torch.zeros(2, 4), torch.zeros(2, 5, dtype=torch.bool)), str(path),
                      input_names=["x", "mask"], output_names=["y", "count"],
                      dynamic_axes={"x": {0: "b"}, "mask": {0: "b"}, "y": {0: "b"}, "count": {0: "b"}}, dynamo=False)
    return path, module


def test_unknown_backend_lists_choices():
    with pytest.raises(BackendError, match="onnxruntime.*tensorrt.*torch"):
        create_session("openvino", "x.onnx")
    assert BACKENDS == ("onnxruntime", "tensorrt", "torch")


def test_onnxruntime_and_torch_sessions_agree(onnx_file):
    path, module = onnx_file
    ort = create_session("onnxruntime", path)
    pt = create_session("torch", module, input_names=("x", "mask"), output_names=("y", "count"))
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    a, b = ort.run({"x": x, "mask": mask}), pt.run({"x": x, "mask": mask})
    assert set(a) == set(b) == {"y", "count"}
    np.testing.assert_allclose(a["y"], b["y"], atol=1e-6)
    np.testing.assert_array_equal(a["count"][:, 0], [2, 1, 5])
    assert ort.input_names == ("x", "mask") and pt.backend_name == "torch"


def test_bad_requests_give_clear_errors(tmp_path, onnx_file):
    with pytest.raises(BackendError, match="not found"):
        create_session("onnxruntime", tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"garbage")
    with pytest.raises(BackendError, match="junk.onnx"):
        create_session("onnxruntime", junk)
    with pytest.raises(BackendError, match="input_names"):
        create_session("torch", onnx_file[1])
    with pytest.raises(BackendError, match="fp16 runs on CUDA only"):
        create_session("torch", onnx_file[1], fp16=True, input_names=("x",), output_names=("y",))
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="CUDA is not available"):
            create_session("torch", onnx_file[1], device="cuda", input_names=("x",), output_names=("y",))
    pt = create_session("torch", onnx_file[1], input_names=("x", "mask"), output_names=("y", "count"))
    with pytest.raises(BackendError, match="missing inputs"):
        pt.run({"x": np.zeros((1, 4), np.float32)})


def test_engine_cache_rebuilds_instead_of_loading_stale(tmp_path, onnx_file):
    path = onnx_file[0]
    cache = EngineCache(tmp_path / "engines")
    key = EngineKey(file_sha256(path), "10.3.0", "Orin", True, 8)
    assert cache.lookup(path, key) is None
    stored = cache.store(path, key, b"engine-bytes")
    assert cache.lookup(path, key) == stored and stored.read_bytes() == b"engine-bytes"
    # any change of ONNX content, TensorRT version, GPU or options is another key: not found -> rebuild
    for other in (EngineKey("0" * 64, "10.3.0", "Orin", True, 8), EngineKey(key.onnx_sha256, "10.4.0", "Orin", True, 8),
                  EngineKey(key.onnx_sha256, "10.3.0", "RTX 4090", True, 8),
                  EngineKey(key.onnx_sha256, "10.3.0", "Orin", False, 8),
                  EngineKey(key.onnx_sha256, "10.3.0", "Orin", True, 4)):
        assert cache.lookup(path, other) is None
    # a sidecar that disagrees with the key (edited, or a digest collision) is not trusted
    sidecar = stored.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["gpu_name"] = "something else"
    sidecar.write_text(json.dumps(data))
    assert cache.lookup(path, key) is None
    assert not list((tmp_path / "engines").glob("*.tmp"))


def test_tensorrt_refuses_clearly_without_tensorrt_or_gpu(onnx_file):
    from dfer_ros.backends.tensorrt_backend import tensorrt_status

    usable, reason = tensorrt_status()
    if usable:
        pytest.skip(f"TensorRT is usable here ({reason}); refusal path not reachable")
    with pytest.raises(BackendError, match="tensorrt backend unavailable"):
        create_session("tensorrt", onnx_file[0])


def test_build_engine_cli_refuses_where_tensorrt_is_missing(tmp_path, capsys):
    from dfer_ros.backends.tensorrt_backend import tensorrt_status
    from dfer_ros.cli.build_engine import main

    assert main([str(tmp_path), "--fp16", "--max-faces", "4"]) == 2
    assert "manifest.json" in capsys.readouterr().err
    if tensorrt_status()[0]:
        pytest.skip("TensorRT is usable here; refusal path not reachable")
    (tmp_path / "manifest.json").write_text("{}")
    assert main([str(tmp_path), "--fp16", "--max-faces", "4"]) == 3
    assert "cannot build TensorRT engines here" in capsys.readouterr().err
