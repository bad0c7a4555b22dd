"""face-api's expression net: TF.js manifest reading, the ONNX conversion, its cache, and parity with two
independent references: face-api's own code on TF.js 4.22 (CPU backend, under node) and a numpy forward
pass written here from the architecture."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import skimage.data

from dfer_ros import assets
from dfer_ros.estimators import faceapi_expression as fe
from dfer_ros.estimators.fer_mini_xception import FER_LABELS
from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.estimators.tfjs_weights import TfjsWeightsError, load_weights, read_manifest, weight_count

MANIFEST = assets.cached_file(assets.FACEAPI_EXPRESSION_MANIFEST)
JS_RUNNER = Path(__file__).parent / "js" / "faceapi_net_tfjs.js"
TFJS_PACKAGE_JSON = Path(__file__).parent / "js" / "package.json"


@pytest.fixture(scope="module")
def weights():
    return load_weights(MANIFEST)


@pytest.fixture(scope="module")
def net():
    return fe.FaceApiExpressionNet(temperature=1.0)


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """(N, 112, 112, 3) RGB 0..255: real aligned faces (astronaut, cap12), noise, a gradient, a constant."""
    import cv2

    from dfer_ros.perception.alignment import align_faces
    from dfer_ros.perception.types import Detection

    faces = []
    astronaut = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    marks = np.array([[200, 101], [247, 102], [220, 124], [198, 142], [239, 143]], np.float32)
    det = Detection(np.array([178, 63, 89, 112], np.float32), 0.9, marks)
    faces.append(align_faces(astronaut, [det], CropSpec(112, 1.0, "rgb"))[0])
    capture = cv2.VideoCapture(str(assets.sample_video()))
    ok, frame = capture.read()
    capture.release()
    assert ok
    faces.append(cv2.resize(frame[40:260, 90:310], (112, 112))[..., ::-1])  # a loose crop of the webcam face
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (2, 112, 112, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:112, 0:112]
    gradient = np.stack([xx * 2, yy * 2, (xx + yy)], -1).clip(0, 255).astype(np.uint8)
    return np.concatenate([np.stack(faces), noise, gradient[None], np.full((1, 112, 112, 3), 128, np.uint8)])


# --------------------------------------------------------------------------------------------- manifest reader

def test_manifest_reads_all_weights_dequantised(weights):
    (shards, specs), = read_manifest(MANIFEST)
    assert [s.name for s in shards] == ["face_expression_model.bin"]
    assert set(weights) == set(fe.expected_shapes())
    assert weight_count(weights) == 323_687  # "about 324k weights"
    # uint8 affine de-quantisation, checked on the raw bytes of the first tensor
    first = specs[0]
    raw = np.frombuffer(shards[0].read_bytes()[:first.size], np.uint8)
    q = first.quantization
    np.testing.assert_allclose(weights[first.name].ravel(), raw * q["scale"] + q["min"], rtol=0, atol=1e-6)
    assert all(w.dtype == np.float32 for w in weights.values())


def test_manifest_errors_name_the_file(tmp_path):
    data = np.arange(6, dtype=np.uint8).tobytes() + np.float16([1.5, -2.0]).tobytes()
    (tmp_path / "w.bin").write_bytes(data)
    manifest = [{"paths": ["w.bin"], "weights": [
        {"name": "a", "shape": [2, 3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
        {"name": "b", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}}]}]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    got = load_weights(path)
    np.testing.assert_allclose(got["a"], (np.arange(6).reshape(2, 3) * 0.5 - 1).astype(np.float32))
    np.testing.assert_allclose(got["b"], [1.5, -2.0])
    (tmp_path / "w.bin").write_bytes(data[:-1])
    with pytest.raises(TfjsWeightsError, match="m.json.*truncated"):
        load_weights(path)
    (tmp_path / "w.bin").write_bytes(data + b"\0")
    with pytest.raises(TfjsWeightsError, match="left after"):
        load_weights(path)
    manifest[0]["weights"][1]["quantization"] = {"dtype": "int4"}
    path.write_text(json.dumps(manifest))
    (tmp_path / "w.bin").write_bytes(data)
    with pytest.raises(TfjsWeightsError, match="int4"):
        load_weights(path)
    path.write_text("{not json")
    with pytest.raises(TfjsWeightsError, match="m.json"):
        load_weights(path)


# --------------------------------------------------------------------------------------------- conversion

def test_onnx_passes_checker_with_dynamic_batch(net, inputs):
    model = onnx.load(str(net.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.name == "rgb"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 112, 112, 3]
    assert [o.name for o in model.graph.output] == ["logits", "probs"]
    initialised = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert initialised == 323_687 + 3 + 1  # the weights plus mean_rgb and 1/255
    batch = net.logits(inputs)
    single = np.concatenate([net.logits(inputs[i:i + 1]) for i in range(len(inputs))])
    np.testing.assert_allclose(batch, single, atol=1e-5)  # batch size does not change a face's result
    assert net.logits(inputs[:0]).shape == (0, 7)
    with pytest.raises(ValueError, match="112"):
        net.logits(np.zeros((1, 64, 64, 3), np.uint8))


def test_flip_average_is_the_mean_of_a_crop_and_its_mirror(net, inputs):
    flipping = fe.FaceApiExpressionNet(temperature=3.0, flip_average=True)
    expected = (net.logits(inputs) + net.logits(inputs[:, :, ::-1])) / 2
    np.testing.assert_allclose(flipping.logits(inputs), expected, atol=1e-5)
    np.testing.assert_allclose(flipping.predict(inputs), fe.softmax(expected, 3.0), atol=1e-5)
    assert flipping.logits(inputs[:0]).shape == (0, 7)


def test_cache_is_keyed_and_heals(tmp_path, monkeypatch):
    first = fe.converted_model_path(cache=tmp_path)
    meta = json.loads(first.with_suffix(".json").read_text())
    assert meta["converter_version"] == fe.CONVERTER_VERSION and meta["package"] == assets.FACEAPI_PACKAGE
    assert meta["source_sha256"] == fe.source_sha256(MANIFEST) and first.name.startswith("faceapi_expression_")
    notice = first.with_name(first.stem + ".LICENSE.txt")
    assert "MIT License" in notice.read_text() and assets.FACEAPI_PACKAGE in notice.read_text()
    stamp = first.stat().st_mtime_ns
    calls = []
    real = fe.expression_net_to_onnx
    monkeypatch.setattr(fe, "expression_net_to_onnx", lambda w: calls.append(1) or real(w))
    assert fe.converted_model_path(cache=tmp_path) == first and not calls  # reused
    assert first.stat().st_mtime_ns == stamp
    first.write_bytes(first.read_bytes()[:1000])  # truncated: rebuilt
    assert fe.converted_model_path(cache=tmp_path) == first and len(calls) == 1
    onnx.checker.check_model(str(first))
    notice.unlink()  # the licence notice is part of the entry
    fe.converted_model_path(cache=tmp_path)
    assert notice.is_file() and len(calls) == 2
    monkeypatch.setattr(fe, "CONVERTER_VERSION", fe.CONVERTER_VERSION + 1)
    newer = fe.converted_model_path(cache=tmp_path)
    assert newer != first and newer.name.endswith(f"_v{fe.CONVERTER_VERSION}.onnx") and len(calls) == 3


def test_wrong_weights_are_refused(tmp_path):
    shutil.copy(MANIFEST.with_name("face_expression_model.bin"), tmp_path / "face_expression_model.bin")
    groups = json.loads(MANIFEST.read_text())
    groups[0]["weights"][0]["name"] = "dense0/conv0/kernel"
    (tmp_path / "m.json").write_text(json.dumps(groups))
    with pytest.raises(fe.FaceApiConversionError, match="missing .*dense0/conv0/filters"):
        fe.converted_model_path(tmp_path / "m.json", cache=tmp_path / "cache")


# --------------------------------------------------------------------------------------------- reference 1: numpy

def _same(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TF 'same' zero padding of NHWC x for a k x k window."""
    h = x.shape[1]
    total = max((-(-h // stride) - 1) * stride + k - h, 0)
    return np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))


def _patches(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]


def _sep(x, w, name, stride):
    dw = np.einsum("nhwcij,ijc->nhwc", _patches(_same(x, 3, stride), 3, stride), w[f"{name}/depthwise_filter"][..., 0])
    return np.einsum("nhwc,co->nhwo", dw, w[f"{name}/pointwise_filter"][0, 0]) + w[f"{name}/bias"]


def numpy_reference(rgb: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """face-api's FaceExpressionNet in float64 NHWC; returns softmax probabilities in face-api's label order."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    x = (rgb.astype(np.float64) - np.array([122.782, 117.001, 104.298])) / 255.0
    for b in range(4):
        p = f"dense{b}"
        if b == 0:
            out1 = np.einsum("nhwcij,ijco->nhwo", _patches(_same(x, 3, 2), 3, 2), w[f"{p}/conv0/filters"])
            out1 = relu(out1 + w[f"{p}/conv0/bias"])
        else:
            out1 = relu(_sep(x, w, f"{p}/conv0", 2))
        out2 = _sep(out1, w, f"{p}/conv1", 1)
        out3 = _sep(relu(out1 + out2), w, f"{p}/conv2", 1)
        out4 = _sep(relu(out1 + out2 + out3), w, f"{p}/conv3", 1)
        x = relu(out1 + out2 + out3 + out4)
    assert x.shape[1:] == (7, 7, 256)
    pooled = x.mean(axis=(1, 2))  # avgPool 7x7 stride 2 'valid' on 7x7 = the mean
    logits = pooled @ w["fc/weights"] + w["fc/bias"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_matches_numpy_reference(net, weights, inputs):
    ours = net.session.run({"rgb": inputs.astype(np.float32)})["probs"]
    reference = numpy_reference(inputs, weights)[:, list(fe.FACEAPI_TO_FER)]
    diff = np.abs(ours - reference).max()
    print(f"ONNX vs numpy reference: max |diff| {diff:.2e} over {len(inputs)} inputs")
    assert diff < 1e-4
    assert FER_LABELS[int(np.argmax(ours[0]))] == "happy"  # the astronaut
    np.testing.assert_allclose(net.predict(inputs), ours, atol=1e-5)  # temperature 1 = the library's softmax


# --------------------------------------------------------------------------------------------- reference 2: TF.js

def _tfjs_modules() -> Path:
    """node_modules with TF.js 4.22 (+ the wasm backend face-api's node build imports) and face-api, as
    ``tests/js/package.json`` lists them; ``make setup`` installs them into the cache while the registry is
    reachable (the tests run without a network). Skips with the reason when node or that install is missing."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the TF.js parity check runs face-api's own code under node")
    folder = assets.cache_dir() / "npm" / "faceapi-tfjs"
    marker = folder / "installed.sha256"
    want = hashlib.sha256(TFJS_PACKAGE_JSON.read_bytes()).hexdigest()
    if not marker.is_file() or marker.read_text().strip() != want:
        pytest.skip(f"TF.js test modules are not installed in {folder} (make setup installs them when npm and "
                    f"the registry are reachable)")
    return folder / "node_modules"


def run_faceapi_net_tfjs(net_class: str, manifest: Path, inputs: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, dict]:
    """(outputs, the runner's report) of face-api's own ``net_class`` (TF.js CPU backend, under node) on the
    (N, side, side, 3) RGB ``inputs``; asserts the runner worked on the pinned TF.js with the CPU backend."""
    modules = _tfjs_modules()
    raw = tmp_path / "inputs.f32"
    inputs.astype("<f4").tofile(raw)
    proc = subprocess.run(["node", str(JS_RUNNER), str(modules), str(manifest), net_class, str(raw), str(len(inputs)),
                           str(inputs.shape[1])],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["backend"] == "cpu" and out["tfjs"] == "4.22.0"
    return np.array(out["outputs"], np.float64), out


def test_tfjs_test_modules_pin_the_asset_version():
    """One source for face-api's version: the parity tests must run the same package the weights come from."""
    deps = json.loads(TFJS_PACKAGE_JSON.read_text())["dependencies"]
    name, version = assets.FACEAPI_PACKAGE.rsplit("@", 1)
    assert deps[name] == version


def test_matches_tfjs_running_faceapis_own_code(net, inputs, tmp_path):
    probs, out = run_faceapi_net_tfjs("FaceExpressionNet", MANIFEST, inputs, tmp_path)
    tfjs = probs[:, list(fe.FACEAPI_TO_FER)]
    ours = net.session.run({"rgb": inputs.astype(np.float32)})["probs"]
    diff = np.abs(ours - tfjs).max()
    print(f"ONNX vs TF.js {out['tfjs']} ({out['backend']} backend, face-api's FaceExpressionNet): "
          f"max |diff| {diff:.2e} over {len(inputs)} inputs")
    assert diff < 1e-4
    assert (ours.argmax(1) == tfjs.argmax(1)).all()
