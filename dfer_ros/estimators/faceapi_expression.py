"""face-api's expression net (npm ``@vladmandic/face-api@1.7.15``, MIT), converted from TF.js weights to ONNX here.

Why: it is the strongest expression net that ships in a reachable registry package (7 classes, 112x112 RGB,
about 324k weights, trained on in-the-wild faces), and on the webcam videos it reads relaxed or talking faces
as neutral where the FER2013 mini-Xception says sad or fear. The package stores only uint8-quantised weights
(``face_expression_model-weights_manifest.json`` + ``.bin``); the layer layout is defined by the library's
code, so it is written out here from the architecture:

    input 112x112 RGB 0..255  ->  (x - mean_rgb) / 255,  mean_rgb = (122.782, 117.001, 104.298)
    dense0: conv0 3x3/2 'same' + bias, relu                          -> 56x56x32
            conv1..3: separable 3x3/1 'same' (depthwise, pointwise 1x1, bias)
            densely connected:  out1 = relu(conv0(x))
                                out2 = conv1(out1)
                                out3 = conv2(relu(out1 + out2))
                                out4 = conv3(relu(out1 + out2 + out3))
                                y    = relu(out1 + out2 + out3 + out4)
    dense1, dense2, dense3: the same block, conv0 a separable 3x3/2 -> 28x28x64, 14x14x128, 7x7x256
    avgPool 7x7 stride 2 'valid' -> 256;  fc 256 -> 7 (matMul + bias);  softmax

The graph takes ``rgb`` (N, 112, 112, 3) float32 RGB levels 0..255 (NHWC, as the pipeline's crops come; the
preprocessing above is inside the graph) with a dynamic batch, and gives ``logits`` and ``probs`` (N, 7) in the
project's label order ``FER_LABELS`` (the fc columns are permuted from face-api's order neutral, happy, sad,
angry, fearful, disgusted, surprised). ``probs`` is the library's own softmax (what parity is checked against);
the calibrated probabilities are softmax(logits / temperature), computed by ``FaceApiExpressionNet``.

The .onnx is cached by the sha256 of manifest + shards and ``CONVERTER_VERSION`` (``onnx_cache``), with the
package's licence beside it. Nothing here imports TensorFlow, TF.js or torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from dfer_ros import assets, vocabulary
from dfer_ros.estimators.fer_mini_xception import FER_LABELS
from dfer_ros.estimators.onnx_cache import cached_tfjs_conversion, licence_notice
from dfer_ros.estimators.onnx_layers import OnnxGraph
from dfer_ros.estimators.tfjs_weights import manifest_sha256

FACEAPI_LABELS = vocabulary.FACEAPI_EXPRESSION_LABELS
# FER_LABELS[i] is face-api's class FACEAPI_TO_FER[i] (matched through the vocabulary's synonyms)
FACEAPI_TO_FER: tuple[int, ...] = tuple(
    [vocabulary.canonical_expression(name) for name in FACEAPI_LABELS].index(label) for label in FER_LABELS)
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 112
INPUT_NAME, LOGITS_NAME, PROBS_NAME = "rgb", "logits", "probs"
CONVERTER_VERSION = 1
BLOCK_CHANNELS = (32, 64, 128, 256)


class FaceApiConversionError(ValueError):
    """The weights are missing, unreadable, or do not have the layout of face-api's expression net."""


def _dense_block(graph: OnnxGraph, x: str, weights: dict[str, np.ndarray], prefix: str, first: bool) -> str:
    """face-api's denseBlock4: four convs, each fed the relu of the sum of all earlier outputs."""
    w = lambda key: weights[f"{prefix}/{key}"]  # noqa: E731
    if first:
        out1 = graph.conv2d(x, w("conv0/filters"), w("conv0/bias"), 2, "same", f"{prefix}_conv0")
    else:
        out1 = graph.separable_conv2d(x, w("conv0/depthwise_filter"), w("conv0/pointwise_filter"),
                                      w("conv0/bias"), 2, "same", f"{prefix}_conv0")
    outs = [graph.relu(out1, f"{prefix}_out1")]
    for k in (1, 2, 3):
        feed = outs[0] if k == 1 else graph.relu(graph.add(outs, f"{prefix}_sum{k}"), f"{prefix}_in{k + 1}")
        outs.append(graph.separable_conv2d(feed, w(f"conv{k}/depthwise_filter"), w(f"conv{k}/pointwise_filter"),
                                           w(f"conv{k}/bias"), 1, "same", f"{prefix}_conv{k}"))
    return graph.relu(graph.add(outs, f"{prefix}_sum"), f"{prefix}_out")


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every weight the layout needs, with its shape (TF conventions)."""
    shapes: dict[str, tuple[int, ...]] = {"dense0/conv0/filters": (3, 3, 3, 32), "dense0/conv0/bias": (32,)}
    c_in = 32
    for b, c in enumerate(BLOCK_CHANNELS):
        for k in range(4):
            if b == 0 and k == 0:
                continue
            cin = c_in if k == 0 else c
            shapes[f"dense{b}/conv{k}/depthwise_filter"] = (3, 3, cin, 1)
            shapes[f"dense{b}/conv{k}/pointwise_filter"] = (1, 1, cin, c)
            shapes[f"dense{b}/conv{k}/bias"] = (c,)
        c_in = c
    shapes["fc/weights"] = (256, 7)
    shapes["fc/bias"] = (7,)
    return shapes


def check_weights(weights: dict[str, np.ndarray], source: str) -> None:
    expected = expected_shapes()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if tuple(weights[k].shape) != expected[k])
    if missing or extra or wrong:
        raise FaceApiConversionError(f"{source}: not face-api's expression net: missing {missing[:5]}, "
                                     f"unexpected {extra[:5]}, wrong shapes {wrong[:5]}")


def expression_net_to_onnx(weights: dict[str, np.ndarray]):
    """The checked ``onnx.ModelProto`` of the expression net from its de-quantised TF.js weights."""
    from onnx import TensorProto, helper

    graph = OnnxGraph("faceapi_expression")
    mean = graph.const("mean_rgb", np.array(MEAN_RGB, np.float32))
    centred = graph.node("Sub", [INPUT_NAME, mean], "centred")
    scaled = graph.node("Mul", [centred, graph.const("inv_255", np.array(1.0 / 255.0, np.float32))], "scaled")
    x = graph.nhwc_input(scaled, INPUT_SIZE, 3, "nchw")
    for b in range(4):
        x = _dense_block(graph, x, weights, f"dense{b}", first=b == 0)
    pooled = graph.avg_pool(x, 7, 2, "pooled")
    if graph.shapes[pooled] != (256, 1, 1):
        raise FaceApiConversionError(f"pooled features have shape {graph.shapes[pooled]}, expected (256, 1, 1)")
    order = list(FACEAPI_TO_FER)
    logits = graph.dense(graph.flatten(pooled, "features"), weights["fc/weights"][:, order],
                         weights["fc/bias"][order], LOGITS_NAME)
    graph.node("Softmax", [logits], PROBS_NAME, axis=-1)
    return graph.model(
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, ["batch", len(FER_LABELS)]),
         helper.make_tensor_value_info(PROBS_NAME, TensorProto.FLOAT, ["batch", len(FER_LABELS)])],
        producer="dfer_ros.faceapi_expression", version=CONVERTER_VERSION)


source_sha256 = manifest_sha256  # the cache key of a conversion


def licence_notices(prefix: str) -> dict[str, str]:
    """The package's MIT licence, shipped beside the converted file."""
    return licence_notice(prefix, f"{prefix}.onnx is converted from the weights of face-api's face_expression_model, "
                          f"as published\nin the npm package {assets.FACEAPI_PACKAGE} (MIT licence, below). The "
                          "conversion to ONNX is\ndone by dfer_ros.estimators.faceapi_expression; the weights are "
                          "unchanged apart from\nde-quantisation and the order of the output classes.\n\n",
                          assets.FACEAPI_LICENSE)


def converted_model_path(manifest_path: Optional[Union[str, Path]] = None, cache: Optional[Path] = None) -> Path:
    """Path of the cached ONNX conversion (default: face-api's checked manifest in the asset cache).

    Raises ``assets.AssetError`` (the fetched files missing or altered) or ``FaceApiConversionError`` naming the file
    (an unreadable manifest or shard, or weights that do not fit the architecture).
    """
    def build(weights: dict, source: Path):
        check_weights(weights, str(source))
        return expression_net_to_onnx(weights)

    return cached_tfjs_conversion("faceapi_expression", manifest_path, CONVERTER_VERSION, build,
                                  {"package": assets.FACEAPI_PACKAGE, "labels": list(FER_LABELS)}, licence_notices,
                                  FaceApiConversionError, cache=cache, what="face-api expression",
                                  default=(assets.FACEAPI_EXPRESSION_WEIGHTS, assets.FACEAPI_EXPRESSION_MANIFEST))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


class FaceApiExpressionNet:
    """The converted net behind an inference session: (N, 112, 112, 3) RGB crops -> (N, 7) probabilities.

    ``temperature`` divides the logits before the softmax (calibration; 1.0 = the library's own outputs).
    ``flip_average`` runs every crop also mirrored (in the same batch) and averages the two logits: an expression
    has no handedness, and on the London faces it gained 1.5 points of accuracy (2.4 on small grey copies) for
    twice the net's cost (docs/default_model.md).
    Backends: "onnxruntime" (CPU, or CUDA first with ``device="cuda"``) and "tensorrt" (batch profile
    1..``max_batch``; larger batches run in chunks).
    """

    labels = FER_LABELS
    input_size = INPUT_SIZE
    color = "rgb"

    def __init__(self, backend: str = "onnxruntime", manifest_path: Optional[Union[str, Path]] = None,
                 temperature: float = 1.0, device: str = "cpu", intra_op_threads: int = 1, fp16: bool = False,
                 max_batch: int = 16, flip_average: bool = False):
        if backend not in ("onnxruntime", "tensorrt"):
            raise ValueError(f"the face-api expression net runs on 'onnxruntime' or 'tensorrt', not {backend!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.onnx_path = converted_model_path(manifest_path)
        from dfer_ros.backends.factory import create_session

        self.session = create_session(backend, self.onnx_path, device=device, fp16=fp16, max_batch=max_batch,
                                      intra_op_threads=intra_op_threads)
        self.backend = backend
        self.temperature = float(temperature)
        self.flip_average = bool(flip_average)
        self.max_batch = max_batch if backend == "tensorrt" else 0
        # one call now: ONNX Runtime's first run allocates and plans, and a pipeline's compute scheduler would
        # otherwise measure that one-off cost as the net's cost per face
        self.logits(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))

    @property
    def views(self) -> int:
        """Views of a crop whose logits are averaged: the crop and, with ``flip_average``, its mirror image."""
        return 2 if self.flip_average else 1

    def logits(self, rgb: np.ndarray, views: Optional[np.ndarray] = None) -> np.ndarray:
        """rgb: (N, 112, 112, 3) uint8/float RGB levels 0..255 -> (N, 7) float32 logits in FER_LABELS order
        (with ``flip_average``: the mean of each crop's and its mirror image's logits).

        ``views`` (with ``flip_average``; None = -1 for every crop): per crop, -1 for that mean, 0 for the crop
        alone, 1 for its mirror image alone; one batch holds all the images asked for."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 4 or rgb.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) RGB crops, got shape {rgb.shape}")
        if len(rgb) == 0:
            return np.zeros((0, len(FER_LABELS)), np.float32)
        n = len(rgb)
        if not self.flip_average:
            return self._run(rgb)
        views = np.full(n, -1, np.int64) if views is None else np.asarray(views, np.int64).reshape(-1)
        if len(views) != n or not np.all((views >= -1) & (views <= 1)):
            raise ValueError(f"views must hold -1, 0 or 1 for each of the {n} crops, got {views.tolist()}")
        plain, mirrored = np.flatnonzero(views != 1), np.flatnonzero(views != 0)
        # the crops asked for as they are, then the mirror images asked for, in the same batch
        logits = self._run(np.concatenate([rgb[plain], rgb[mirrored][:, :, ::-1]]))
        total = np.zeros((n, logits.shape[1]), np.float32)
        total[plain] += logits[:len(plain)]
        total[mirrored] += logits[len(plain):]
        return total / np.where(views == -1, 2.0, 1.0).astype(np.float32)[:, None]

    def _run(self, rgb: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(rgb, np.float32)
        step = self.max_batch or len(batch)
        parts = [self.session.run({INPUT_NAME: batch[i:i + step]})[LOGITS_NAME] for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32)

    def predict(self, rgb: np.ndarray, views: Optional[np.ndarray] = None) -> np.ndarray:
        """Calibrated probabilities softmax(logits / temperature), (N, 7) in FER_LABELS order (``views``: see
        ``logits``)."""
        return softmax(self.logits(rgb, views), self.temperature)
