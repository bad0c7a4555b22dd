"""The HDF5 -> ONNX conversion of the FER2013 mini-Xception equals independent references, and its cache heals."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import onnx
import pytest

from dfer_ros import assets
from dfer_ros.estimators.fer_mini_xception import (FER_LABELS, ConversionError, FerMiniXception,
                                                   converted_model_path, keras_h5_to_onnx)

HDF5 = assets.package_file(assets.FER_EMOTION_MODEL)


def _inputs(n: int = 6) -> np.ndarray:
    """Grey images in [0, 255]: noise, smooth blobs and a constant image (exercises BN/pool edge cases)."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (n // 2, 64, 64)).astype(np.float32)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    smooth = np.stack([127.5 + 120 * np.sin(3 * xx + k) * np.cos(2 * yy - k) for k in range(n // 2 - 1)])
    return np.concatenate([noise, smooth, np.full((1, 64, 64), 128.0)]).astype(np.float32)


# ---------------------------------------------------------------- reference 1: plain numpy, NHWC, from h5py

def _weights(layer: str) -> dict[str, np.ndarray]:
    with h5py.File(HDF5, "r") as f:
        group = f["model_weights"][layer]
        return {k.split("/")[-1].split(":")[0]: np.array(group[k], np.float64)
                for k in (n.decode() for n in group.attrs["weight_names"])}


def _pad_same(x: np.ndarray, k: int, stride: int, value: float) -> np.ndarray:
    h = x.shape[1]
    total = max((-(-h // stride) - 1) * stride + k - h, 0)
    before = total // 2
    return np.pad(x, ((0, 0), (before, total - before), (before, total - before), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, k, k) patches."""
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    return view[:, ::stride, ::stride]


def _conv(x, kernel, stride=1, same=False):
    k = kernel.shape[0]
    if same:
        x = _pad_same(x, k, stride, 0.0)
    return np.einsum("nhwcij,ijco->nhwo", _windows(x, k, stride), kernel)


def _depthwise(x, kernel):  # kernel (k, k, C, 1), 'same', stride 1
    k = kernel.shape[0]
    return np.einsum("nhwcij,ijc->nhwc", _windows(_pad_same(x, k, 1, 0.0), k, 1), kernel[..., 0])


def _bn(x, layer):
    w = _weights(layer)
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3) * w["gamma"] + w["beta"]


def _maxpool_same(x):
    return _windows(_pad_same(x, 3, 2, -np.inf), 3, 2).max(axis=(-1, -2))


def numpy_reference(gray: np.ndarray) -> np.ndarray:
    """The architecture as REFERENCE.md describes it, written out by hand (not from model_config)."""
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    x = (gray[..., None].astype(np.float64) / 255.0 - 0.5) * 2.0
    x = relu(_bn(_conv(x, _weights("conv2d_1")["kernel"]), "batch_normalization_1"))
    x = relu(_bn(_conv(x, _weights("conv2d_2")["kernel"]), "batch_normalization_2"))
    sep, bn = 1, 3
    for module, shortcut_conv in zip(range(4), ("conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6")):
        residual = _bn(_conv(x, _weights(shortcut_conv)["kernel"], stride=2, same=True), f"batch_normalization_{bn}")
        w1, w2 = _weights(f"separable_conv2d_{sep}"), _weights(f"separable_conv2d_{sep + 1}")
        y = _conv(_depthwise(x, w1["depthwise_kernel"]), w1["pointwise_kernel"])
        y = relu(_bn(y, f"batch_normalization_{bn + 1}"))
        y = _bn(_conv(_depthwise(y, w2["depthwise_kernel"]), w2["pointwise_kernel"]), f"batch_normalization_{bn + 2}")
        x = _maxpool_same(y) + residual
        sep, bn = sep + 2, bn + 3
    head = _weights("conv2d_7")
    logits = (_conv(x, head["kernel"], same=True) + head["bias"]).mean(axis=(1, 2))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_onnx_equals_numpy_reference():
    net = FerMiniXception()
    x = _inputs()
    got = net.predict(x)
    want = numpy_reference(x)
    diff = float(np.abs(got - want).max())
    print(f"max |onnx - numpy reference| = {diff:.2e} over {len(x)} images")
    assert got.shape == (len(x), len(FER_LABELS))
    assert diff < 1e-5
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_weight_count_matches_keras_model():
    model = onnx.load(str(converted_model_path()))
    # BN in ONNX holds the same 4 vectors Keras holds (gamma, beta, mean, variance)
    count = sum(int(np.prod(t.dims)) for t in model.graph.initializer if not t.name.startswith("pre_"))
    assert count == 58423


def test_onnx_equals_keras_reference():
    """Keras 3 (torch backend) loading the original .hdf5 is the reference, run in a clean subprocess."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is a test-only reference (pip install keras==3.15.1)")
    x = _inputs()
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        model = keras.models.load_model({str(HDF5)!r}, compile=False)
        x = np.load(sys.argv[1])
        np.save(sys.argv[2], model.predict((x[..., None] / 255.0 - 0.5) * 2.0, verbose=0))
    """)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), x)
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        done = subprocess.run([sys.executable, "-c", script, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")],
                              env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"keras could not load the model: {done.stderr[-500:]}")
        want = np.load(os.path.join(tmp, "y.npy"))
    got = FerMiniXception().predict(x)
    diff = float(np.abs(got - want).max())
    print(f"max |onnx - keras (torch backend)| = {diff:.2e}")
    assert diff < 1e-5
    assert (got.argmax(1) == want.argmax(1)).all()


def test_dynamic_batch_and_empty_batch():
    net = FerMiniXception()
    x = _inputs()
    single = np.concatenate([net.predict(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(net.predict(x), single, atol=1e-6)
    assert net.predict(np.zeros((0, 64, 64), np.uint8)).shape == (0, 7)
    with pytest.raises(ValueError, match="64"):
        net.predict(np.zeros((1, 48, 48), np.uint8))


def test_graph_passes_checker_and_has_dynamic_batch():
    model = keras_h5_to_onnx(HDF5)
    onnx.checker.check_model(model, full_check=True)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Softmax"} <= ops


def test_cache_is_reused_then_rebuilt_when_corrupt(tmp_path):
    first = converted_model_path(cache=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert converted_model_path(cache=tmp_path) == first and first.stat().st_mtime_ns == stamp  # reused
    meta = json.loads(first.with_suffix(".json").read_text())
    assert meta["source_sha256"] == assets.FER_EMOTION_MODEL.sha256

    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 3])  # truncated
    assert converted_model_path(cache=tmp_path).read_bytes() == good
    tampered = bytearray(good)
    tampered[-100] ^= 0xFF  # still parses, but the weights changed
    first.write_bytes(bytes(tampered))
    assert converted_model_path(cache=tmp_path).read_bytes() == good
    first.unlink()
    assert converted_model_path(cache=tmp_path).read_bytes() == good


def test_missing_or_corrupt_hdf5_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.hdf5"
    with pytest.raises(ConversionError, match="nowhere.hdf5"):
        converted_model_path(missing, cache=tmp_path)
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(HDF5.read_bytes()[:5000])
    with pytest.raises(ConversionError, match="corrupt.hdf5"):
        converted_model_path(corrupt, cache=tmp_path)
    not_a_model = tmp_path / "plain.hdf5"
    with h5py.File(not_a_model, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ConversionError, match="plain.hdf5.*model_config"):
        FerMiniXception(hdf5_path=not_a_model)


def test_checksum_of_the_packaged_hdf5_is_enforced(tmp_path):
    fake = tmp_path / "emotion_model.hdf5"
    fake.write_bytes(HDF5.read_bytes()[:-10])
    with pytest.raises(assets.AssetError, match="emotion_model.hdf5"):
        assets.verified_file(fake, assets.FER_EMOTION_MODEL)


def test_batches_larger_than_the_profile_run_in_chunks():
    net = FerMiniXception()
    x = _inputs()
    whole = net.predict(x)
    net.max_batch = 4  # as with a TensorRT profile of 1..4
    np.testing.assert_allclose(net.predict(x), whole, atol=1e-6)


def test_tensorrt_matches_onnxruntime(tmp_path):
    from dfer_ros.backends.tensorrt_backend import tensorrt_status

    usable, reason = tensorrt_status()
    if not usable:
        pytest.skip(f"TensorRT not usable here: {reason}")
    x = _inputs()
    want = FerMiniXception().predict(x)
    got = FerMiniXception(backend="tensorrt", max_batch=4).predict(x)
    diff = float(np.abs(got - want).max())
    print(f"max |tensorrt - onnxruntime| = {diff:.2e}")
    assert diff < 1e-3


def test_read_only_cache_falls_back_to_a_temp_dir(tmp_path, monkeypatch):
    blocked = tmp_path / "file_not_dir"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DFER_CACHE_DIR", str(blocked))
    path = converted_model_path()
    assert not str(path).startswith(str(blocked)) and path.is_file()
    onnx.checker.check_model(str(path))
    with pytest.raises(ConversionError, match="file_not_dir"):
        converted_model_path(cache=blocked / "models")
