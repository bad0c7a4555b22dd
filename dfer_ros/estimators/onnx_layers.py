"""Layer-building helpers for converters that write TensorFlow-style nets as ONNX graphs with ``onnx.helper``.

Shared by the converters of weights that ship without a graph (TF.js weight manifests): each converter
writes its net's layer layout from the architecture with these helpers, which take TensorFlow's tensor
conventions (kernels HWIO, depthwise kernels HWC1, dense weights (in, out), 'same' padding that puts the odd
pixel after) and emit NCHW ONNX nodes with explicit pads. Nothing here imports TensorFlow or torch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # readable by older ONNX Runtime / TensorRT builds (opset 17 needs IR >= 8)


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def out_size(size: int, kernel: int, stride: int, pads: tuple[int, int] = (0, 0)) -> int:
    return (size + pads[0] + pads[1] - kernel) // stride + 1


class OnnxGraph:
    """Collects nodes and float32 initialisers; tracks each NCHW tensor's (C, H, W) for padding decisions."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list = []
        self.initializers: list = []
        self.shapes: dict[str, tuple[int, int, int]] = {}
        self._count = 0

    # -- primitives ------------------------------------------------------------------------------------
    def const(self, name: str, array, dtype=np.float32) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs) -> str:
        from onnx import helper

        self._count += 1
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=f"{op}_{self._count}_{output}", **attrs))
        return output

    # -- layers (TF conventions in, NCHW ONNX out) -------------------------------------------------------
    def conv2d(self, x: str, kernel_hwio: np.ndarray, bias, stride: int, padding: str, out: str,
               group: int = 1) -> str:
        """TF conv2d (kernel (kh, kw, in/group, out)) with 'same' or 'valid' padding, optional bias."""
        c, h, w = self.shapes[x]
        kh, kw, _, filters = kernel_hwio.shape
        if padding == "same":
            (top, bottom), (left, right) = tf_same_pads(h, kh, stride), tf_same_pads(w, kw, stride)
        elif padding == "valid":
            top = bottom = left = right = 0
        else:
            raise ValueError(f"padding {padding!r}: 'same' or 'valid'")
        inputs = [x, self.const(f"{out}_W", np.transpose(kernel_hwio, (3, 2, 0, 1)))]
        if bias is not None:
            inputs.append(self.const(f"{out}_B", bias))
        self.node("Conv", inputs, out, kernel_shape=[kh, kw], strides=[stride, stride],
                  pads=[top, left, bottom, right], group=group)
        self.shapes[out] = (filters, out_size(h, kh, stride, (top, bottom)), out_size(w, kw, stride, (left, right)))
        return out

    def depthwise_conv2d(self, x: str, kernel_hwc1: np.ndarray, stride: int, padding: str, out: str) -> str:
        """TF depthwise conv (kernel (kh, kw, C, 1), multiplier 1) as a grouped Conv."""
        c = self.shapes[x][0]
        if kernel_hwc1.shape[2:] != (c, 1):
            raise ValueError(f"{out}: depthwise kernel {kernel_hwc1.shape} does not fit {c} channels (multiplier 1)")
        return self.conv2d(x, np.transpose(kernel_hwc1, (0, 1, 3, 2)), None, stride, padding, out, group=c)

    def separable_conv2d(self, x: str, depthwise_hwc1: np.ndarray, pointwise_11io: np.ndarray, bias,
                         stride: int, padding: str, out: str) -> str:
        """TF separableConv2d: depthwise (with the stride) then pointwise 1x1, bias added after the pointwise."""
        dw = self.depthwise_conv2d(x, depthwise_hwc1, stride, padding, f"{out}_depthwise")
        return self.conv2d(dw, pointwise_11io, bias, 1, "valid", out)

    def relu(self, x: str, out: str) -> str:
        self.node("Relu", [x], out)
        self.shapes[out] = self.shapes[x]
        return out

    def add(self, inputs: Sequence[str], out: str) -> str:
        """Elementwise sum of same-shaped tensors, as a chain of Add nodes."""
        shapes = {self.shapes[t] for t in inputs}
        if len(shapes) != 1:
            raise ValueError(f"{out}: cannot add tensors of shapes {[self.shapes[t] for t in inputs]}")
        acc = inputs[0]
        for i, other in enumerate(inputs[1:]):
            acc = self.node("Add", [acc, other], out if i == len(inputs) - 2 else f"{out}_{i}")
        self.shapes[out] = self.shapes[inputs[0]]
        return out

    def avg_pool(self, x: str, kernel: int, stride: int, out: str) -> str:
        """TF avgPool with 'valid' padding."""
        c, h, w = self.shapes[x]
        self.node("AveragePool", [x], out, kernel_shape=[kernel, kernel], strides=[stride, stride])
        self.shapes[out] = (c, out_size(h, kernel, stride), out_size(w, kernel, stride))
        return out

    def flatten(self, x: str, out: str) -> str:
        self.node("Flatten", [x], out, axis=1)
        c, h, w = self.shapes[x]
        self.shapes[out] = (c * h * w, 1, 1)
        return out

    def dense(self, x: str, weights_io: np.ndarray, bias, out: str) -> str:
        """TF matMul(x, W) + b on (N, in) rows: W is (in, out)."""
        inputs = [x, self.const(f"{out}_W", weights_io)]
        if bias is None:
            return self.node("MatMul", inputs, out)
        self.node("Gemm", inputs + [self.const(f"{out}_B", bias)], out)
        self.shapes[out] = (weights_io.shape[1], 1, 1)
        return out

    def nhwc_input(self, name: str, size: int, channels: int, out: str) -> str:
        """Declare nothing yet; transpose an (N, H, W, C) input to NCHW and record its shape."""
        self.node("Transpose", [name], out, perm=[0, 3, 1, 2])
        self.shapes[out] = (channels, size, size)
        return out

    # -- the model -----------------------------------------------------------------------------------------
    def model(self, inputs: list, outputs: list, producer: str, version: int):
        """The checked ``onnx.ModelProto`` (``onnx.checker`` full check; raises if the graph is malformed)."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                                  producer_name=producer, producer_version=str(version))
        model.ir_version = ONNX_IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model
