"""CLIP-adapter temporal models: a frozen CLIP image tower with per-frame adapters, a temporal head
(TCN + short Transformer, optional lifting split) over a track's cached frame embeddings, a CLIP text
side for zero-shot scores and compound expressions.

Submodules that touch torch (model, adapters, temporal_head, checkpoint, freezing, export, text
towers) are imported explicitly by the caller; importing this package, ``config``, ``compound`` or
the numpy half of ``preprocess`` does not import torch, so runtime code on ONNX Runtime / TensorRT
stays torch-free.
"""
