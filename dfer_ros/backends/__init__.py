"""Inference backends behind one interface (see ``base``): torch, onnxruntime, tensorrt.

Only the torch backend imports torch, so a robot running ONNX Runtime or TensorRT needs no torch.
"""
