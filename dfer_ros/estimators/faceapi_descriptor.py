"""face-api's face descriptor net (npm ``@vladmandic/face-api@1.7.15``), converted from TF.js weights to ONNX here.

Why: re-identification needs a descriptor that says "same person" across expression, pose and light. This one
is face-api's ``face_recognition_model``: a port of dlib's ResNet-34-like face recognition net
(``dlib_face_recognition_resnet_model_v1``; dlib's weights are in the public domain, face-api's code is MIT),
128-D, 150x150 RGB, about 5.8M uint8-quantised weights in a TF.js manifest without a graph. The layer layout
below is written from the architecture (same converter family as ``faceapi_expression``):

    input 150x150 RGB 0..255 -> (x - mean_rgb) / 255,   mean_rgb = (122.782, 117.001, 104.298)
    conv(k, s, pad):  conv2d + bias, then a per-channel affine "scale" layer (x * w + b)
    conv32_down:      conv 7x7/2 'valid', relu                             -> 72x72x32
    maxPool 3x3/2 'valid'                                                   -> 35x35x32
    residual:         relu(x + conv3x3/1 'same'(relu(conv3x3/1 'same'(x))))   (conv32_1..3, 64_1..3, ...)
    residualDown:     out = conv3x3/1 'same'(relu(conv3x3/2 'valid'(x)));  pooled = avgPool 2x2/2 'valid'(x)
                      out is zero-padded by one row and column at the end where its size is below pooled's,
                      pooled is zero-padded in channels (C -> 2C) where out has more; relu(pooled + out)
    conv64_down, 64_1..3 -> 17x17x64;  conv128_down, 128_1..2 -> 8x8x128;
    conv256_down, 256_1..2 -> 4x4x256;  conv256_down_out -> 2x2x256;  mean over H, W -> 256;  matMul fc -> 128

The graph takes ``rgb`` (N, 150, 150, 3) float32 RGB levels 0..255 (NHWC, dynamic batch) and gives
``descriptor`` (N, 128), the library's raw output (``computeFaceDescriptor``). Faces are compared by the
Euclidean distance of raw descriptors, as dlib does (docs/reidentification.md: the London set's figures).

The .onnx is cached by the sha256 of manifest + shards and ``CONVERTER_VERSION`` (``onnx_cache``), with the
package's licence and dlib's public-domain note beside it. Nothing here imports TensorFlow, TF.js or torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from dfer_ros import assets
from dfer_ros.estimators.onnx_cache import cached_tfjs_conversion, licence_notice
from dfer_ros.estimators.onnx_layers import OnnxGraph
from dfer_ros.estimators.tfjs_weights import manifest_sha256
from dfer_ros.perception.model_interface import CropSpec, FaceDescriptor

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 150
DESCRIPTOR_SIZE = 128
INPUT_NAME, DESCRIPTOR_NAME = "rgb", "descriptor"
CONVERTER_VERSION = 1
# (layer prefix, is a residualDown) in forward order, after conv32_down and the max pool
RESIDUAL_LAYERS: tuple[tuple[str, bool], ...] = (
    ("conv32_1", False), ("conv32_2", False), ("conv32_3", False),
    ("conv64_down", True), ("conv64_1", False), ("conv64_2", False), ("conv64_3", False),
    ("conv128_down", True), ("conv128_1", False), ("conv128_2", False),
    ("conv256_down", True), ("conv256_1", False), ("conv256_2", False),
    ("conv256_down_out", True),
)


class DescriptorConversionError(ValueError):
    """The weights are missing, unreadable, or do not have the layout of face-api's descriptor net."""


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every weight the layout needs, with its shape (TF conventions)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(prefix: str, k: int, c_in: int, c_out: int) -> None:
        shapes[f"{prefix}/conv/filters"] = (k, k, c_in, c_out)
        for key in ("conv/bias", "scale/weights", "scale/biases"):
            shapes[f"{prefix}/{key}"] = (c_out,)

    conv("conv32_down", 7, 3, 32)
    channels = 32
    for prefix, down in RESIDUAL_LAYERS:
        c_out = int(prefix[4:].split("_")[0])
        conv(f"{prefix}/conv1", 3, channels, c_out)
        conv(f"{prefix}/conv2", 3, c_out, c_out)
        channels = c_out
    shapes["fc"] = (256, DESCRIPTOR_SIZE)
    return shapes


def check_weights(weights: dict[str, np.ndarray], source: str) -> None:
    expected = expected_shapes()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if tuple(weights[k].shape) != expected[k])
    if missing or extra or wrong:
        raise DescriptorConversionError(f"{source}: not face-api's descriptor net: missing {missing[:5]}, "
                                        f"unexpected {extra[:5]}, wrong shapes {wrong[:5]}")


def _conv(graph: OnnxGraph, x: str, weights: dict[str, np.ndarray], prefix: str, stride: int, padding: str,
          relu: bool) -> str:
    """face-api's convLayer: conv2d + bias, per-channel scale layer, optional relu."""
    w = lambda key: weights[f"{prefix}/{key}"]  # noqa: E731
    name = prefix.replace("/", "_")
    # the scale layer (x * s + b) folded into the conv: conv(x, K * s) + (bias * s + b); exact up to rounding
    s = w("scale/weights")
    conv = graph.conv2d(x, w("conv/filters") * s, w("conv/bias") * s + w("scale/biases"), stride, padding,
                        f"{name}_conv")
    return graph.relu(conv, f"{name}_relu") if relu else conv


def _pad(graph: OnnxGraph, x: str, channels_after: int, spatial_after: int, out: str) -> str:
    """Zeros appended after the channels and/or after the rows and columns (NCHW)."""
    pads = graph.const(f"{out}_pads", np.array([0, 0, 0, 0, 0, channels_after, spatial_after, spatial_after],
                                               np.int64), dtype=np.int64)
    graph.node("Pad", [x, pads], out, mode="constant")
    c, h, w = graph.shapes[x]
    graph.shapes[out] = (c + channels_after, h + spatial_after, w + spatial_after)
    return out


def _residual(graph: OnnxGraph, x: str, weights: dict[str, np.ndarray], prefix: str, down: bool) -> str:
    out = _conv(graph, x, weights, f"{prefix}/conv1", 2 if down else 1, "valid" if down else "same", True)
    out = _conv(graph, out, weights, f"{prefix}/conv2", 1, "same", False)
    shortcut = x
    if down:
        shortcut = graph.avg_pool(x, 2, 2, f"{prefix}_pooled")
        c_out, h_out, _ = graph.shapes[out]
        c_pool, h_pool, _ = graph.shapes[shortcut]
        if h_out != h_pool:
            if h_pool - h_out != 1:
                raise DescriptorConversionError(f"{prefix}: residual branch {h_out} px vs shortcut {h_pool} px")
            out = _pad(graph, out, 0, 1, f"{prefix}_out_padded")
        if c_out != c_pool:
            shortcut = _pad(graph, shortcut, c_out - c_pool, 0, f"{prefix}_pooled_padded")
    return graph.relu(graph.add([shortcut, out], f"{prefix}_sum"), f"{prefix}_out")


def descriptor_net_to_onnx(weights: dict[str, np.ndarray]):
    """The checked ``onnx.ModelProto`` of the descriptor net from its de-quantised TF.js weights."""
    from onnx import TensorProto, helper

    graph = OnnxGraph("faceapi_descriptor")
    mean = graph.const("mean_rgb", np.array(MEAN_RGB, np.float32))
    centred = graph.node("Sub", [INPUT_NAME, mean], "centred")
    scaled = graph.node("Mul", [centred, graph.const("inv_255", np.array(1.0 / 255.0, np.float32))], "scaled")
    x = graph.nhwc_input(scaled, INPUT_SIZE, 3, "nchw")
    x = _conv(graph, x, weights, "conv32_down", 2, "valid", True)
    graph.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2])
    c, h, w = graph.shapes[x]
    graph.shapes["maxpool"] = (c, (h - 3) // 2 + 1, (w - 3) // 2 + 1)
    x = "maxpool"
    for prefix, down in RESIDUAL_LAYERS:
        x = _residual(graph, x, weights, prefix, down)
    if graph.shapes[x] != (256, 2, 2):
        raise DescriptorConversionError(f"last features have shape {graph.shapes[x]}, expected (256, 2, 2)")
    graph.node("GlobalAveragePool", [x], "pooled")
    graph.shapes["pooled"] = (256, 1, 1)
    features = graph.flatten("pooled", "features")
    graph.dense(features, weights["fc"], None, DESCRIPTOR_NAME)
    return graph.model(
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info(DESCRIPTOR_NAME, TensorProto.FLOAT, ["batch", DESCRIPTOR_SIZE])],
        producer="dfer_ros.faceapi_descriptor", version=CONVERTER_VERSION)


source_sha256 = manifest_sha256  # the cache key of a conversion


def licence_notices(prefix: str) -> dict[str, str]:
    """The package's MIT licence and where the weights come from, shipped beside the converted file."""
    return licence_notice(prefix, f"{prefix}.onnx is converted from the weights of face-api's face_recognition_model, "
                          f"as published\nin the npm package {assets.FACEAPI_PACKAGE} (code under the MIT licence, "
                          "below). The weights are\na port of dlib's dlib_face_recognition_resnet_model_v1, which its "
                          "author released into the public\ndomain. The conversion to ONNX is done by "
                          "dfer_ros.estimators.faceapi_descriptor; the weights are\nunchanged apart from "
                          "de-quantisation and folding each scale layer into its convolution.\n\n",
                          assets.FACEAPI_LICENSE)


def converted_model_path(manifest_path: Optional[Union[str, Path]] = None, cache: Optional[Path] = None) -> Path:
    """Path of the cached ONNX conversion (default: face-api's checked manifest in the asset cache).

    Raises ``assets.AssetError`` (the fetched files missing or altered) or ``DescriptorConversionError`` naming the file
    (an unreadable manifest or shard, or weights that do not fit the architecture).
    """
    def build(weights: dict, source: Path):
        check_weights(weights, str(source))
        return descriptor_net_to_onnx(weights)

    return cached_tfjs_conversion("faceapi_descriptor", manifest_path, CONVERTER_VERSION, build,
                                  {"package": assets.FACEAPI_PACKAGE}, licence_notices, DescriptorConversionError,
                                  cache=cache, what="face-api descriptor",
                                  default=(assets.FACEAPI_RECOGNITION_WEIGHTS, assets.FACEAPI_RECOGNITION_MANIFEST))


class FaceApiDescriptorNet:
    """The converted net behind an inference session: (N, 150, 150, 3) RGB crops -> (N, 128) descriptors.

    Backends: "onnxruntime" (CPU, or CUDA first with ``device="cuda"``) and "tensorrt".
    """

    input_size = INPUT_SIZE
    size = DESCRIPTOR_SIZE
    color = "rgb"

    def __init__(self, backend: str = "onnxruntime", manifest_path: Optional[Union[str, Path]] = None,
                 device: str = "cpu", intra_op_threads: int = 1, fp16: bool = False, max_batch: int = 8):
        if backend not in ("onnxruntime", "tensorrt"):
            raise ValueError(f"the face-api descriptor net runs on 'onnxruntime' or 'tensorrt', not {backend!r}")
        self.onnx_path = converted_model_path(manifest_path)
        from dfer_ros.backends.factory import create_session

        self.session = create_session(backend, self.onnx_path, device=device, fp16=fp16, max_batch=max_batch,
                                      intra_op_threads=intra_op_threads)
        self.backend = backend
        self.max_batch = max_batch if backend == "tensorrt" else 0
        # one call now, so the first real face does not pay ONNX Runtime's one-off planning
        self.describe(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))

    def describe(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) RGB levels 0..255 -> (N, 128) float32 descriptors (compare by Euclidean distance)."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 4 or rgb.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) RGB crops, got shape {rgb.shape}")
        if len(rgb) == 0:
            return np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        batch = np.ascontiguousarray(rgb, np.float32)
        step = self.max_batch or len(batch)
        parts = [self.session.run({INPUT_NAME: batch[i:i + step]})[DESCRIPTOR_NAME]
                 for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32)


# The framing that verifies best on the London set (docs/reidentification.md: TAR at FAR 0.1 % for
# face_scale 0.9 ... 1.4 measured by dfer eval verification --face-scale): the 5-point template a little
# wider than the expression net's
CROP_SPEC = CropSpec(INPUT_SIZE, 1.1, "rgb")


class FaceApiDescriptor(FaceDescriptor):
    """The core's ``FaceDescriptor`` interface over ``FaceApiDescriptorNet``."""

    size = DESCRIPTOR_SIZE
    name = "faceapi_descriptor"

    def __init__(self, crop_spec: CropSpec = CROP_SPEC, **net_options):
        self.crop_spec = crop_spec
        self.net = FaceApiDescriptorNet(**net_options)

    def describe(self, crops: np.ndarray) -> np.ndarray:
        return self.net.describe(crops)

    def close(self) -> None:
        self.net = None


def load_descriptor(backend: str = "onnxruntime") -> tuple[Optional[FaceApiDescriptor], str]:
    """(the descriptor, "") or (None, the reason) when its weights or runtime are missing: re-identification is
    an optional part, so a missing descriptor turns it off (the node says so in its diagnostics) instead of
    stopping the node."""
    try:
        return FaceApiDescriptor(backend="tensorrt" if backend == "tensorrt" else "onnxruntime"), ""
    except Exception as exc:  # noqa: BLE001 - any load failure only disables re-identification
        return None, f"reid: descriptor model unavailable ({type(exc).__name__}: {exc}); no person ids"
