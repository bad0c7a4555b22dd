"""Read a TensorFlow.js weights manifest (``*-weights_manifest.json`` + binary shards) into numpy arrays.

Why: face-api's nets (expression, descriptor, ...) ship as TF.js "weights only" files: the manifest lists
weight groups, each with its shard files and, in order, every tensor's name, shape, dtype and optional
quantisation; the shards of a group, concatenated, hold the tensors back to back. No graph is stored; the
layer layout lives in the library's code, so the converters (``faceapi_expression``) rebuild it themselves.
Reading needs numpy only, no TensorFlow or TF.js.

De-quantisation follows the TF.js weights format:
  * ``{"dtype": "uint8"|"uint16", "scale": s, "min": m}``: value = q * s + m (affine, per tensor)
  * ``{"dtype": "float16"}``: IEEE half floats
Stored dtypes: float32, int32, bool (one byte each), plus the quantised forms above. Anything else, a shard
shorter than its manifest says, or bytes left over, is a ``TfjsWeightsError`` naming the file.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from dfer_ros.user_files import read_user_json


class TfjsWeightsError(ValueError):
    """The manifest or a shard is unreadable, truncated, or uses a dtype/quantisation this reader lacks."""


_PLAIN = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1")}
_QUANT = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2")}


@dataclass(frozen=True)
class WeightSpec:
    """One tensor of a manifest: where it is and how it is stored."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # the dtype it decodes to (float32, int32, bool)
    quantization: Optional[dict]  # None, or {"dtype": ..., "scale": ..., "min": ...}

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def stored_dtype(self) -> np.dtype:
        if self.quantization is not None:
            kind = self.quantization.get("dtype")
            if kind not in _QUANT:
                raise TfjsWeightsError(f"weight {self.name}: quantisation dtype {kind!r} not supported "
                                       f"(known: {sorted(_QUANT)})")
            return _QUANT[kind]
        if self.dtype not in _PLAIN:
            raise TfjsWeightsError(f"weight {self.name}: dtype {self.dtype!r} not supported (known: {sorted(_PLAIN)})")
        return _PLAIN[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.stored_dtype.itemsize

    def decode(self, raw: bytes) -> np.ndarray:
        """Stored bytes -> the tensor (float32 for float weights, quantised or not)."""
        stored = np.frombuffer(raw, self.stored_dtype, count=self.size)
        q = self.quantization
        if q is None:
            values = stored
        elif q["dtype"] == "float16":
            values = stored.astype(np.float32)
        else:
            try:
                scale, low = float(q["scale"]), float(q["min"])
            except (KeyError, TypeError, ValueError) as exc:
                raise TfjsWeightsError(f"weight {self.name}: quantisation needs numeric scale and min, "
                                       f"got {q}") from exc
            # in float64 then rounded once, as close to TF.js's own float32 de-quantisation as float32 allows
            values = (stored.astype(np.float64) * scale + low).astype(np.float32)
        if self.dtype == "float32":
            values = values.astype(np.float32, copy=False)
        elif self.dtype == "int32":
            values = values.astype(np.int32, copy=False)
        else:
            values = values.astype(bool)
        return values.reshape(self.shape).copy()


def read_manifest(path: Union[str, Path]) -> list[tuple[list[Path], list[WeightSpec]]]:
    """The manifest's groups: (shard paths, weight specs in storage order)."""
    path = Path(path)
    try:
        groups = read_user_json(path)
    except (OSError, ValueError) as exc:
        raise TfjsWeightsError(f"{path}: cannot read the weights manifest ({exc})") from exc
    if not isinstance(groups, list):
        raise TfjsWeightsError(f"{path}: a weights manifest is a list of groups, got {type(groups).__name__}")
    out = []
    for i, group in enumerate(groups):
        try:
            shards = [path.parent / name for name in group["paths"]]
            specs = [WeightSpec(w["name"], tuple(int(d) for d in w["shape"]), w.get("dtype", "float32"),
                                w.get("quantization")) for w in group["weights"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise TfjsWeightsError(f"{path}: group {i} is malformed ({type(exc).__name__}: {exc})") from exc
        out.append((shards, specs))
    return out


def load_weights(manifest_path: Union[str, Path]) -> dict[str, np.ndarray]:
    """All tensors of a TF.js weights manifest, de-quantised: {name: array} (TfjsWeightsError naming the file)."""
    manifest_path = Path(manifest_path)
    weights: dict[str, np.ndarray] = {}
    for shards, specs in read_manifest(manifest_path):
        try:
            data = b"".join(shard.read_bytes() for shard in shards)
        except OSError as exc:
            raise TfjsWeightsError(f"{manifest_path}: cannot read a weight shard ({exc})") from exc
        offset = 0
        for spec in specs:
            end = offset + spec.nbytes
            if end > len(data):
                raise TfjsWeightsError(f"{manifest_path}: shards {[s.name for s in shards]} hold {len(data)} bytes, "
                                       f"but weight {spec.name} needs bytes {offset}..{end}: truncated file?")
            if spec.name in weights:
                raise TfjsWeightsError(f"{manifest_path}: weight {spec.name} appears twice")
            weights[spec.name] = spec.decode(data[offset:end])
            offset = end
        if offset != len(data):
            raise TfjsWeightsError(f"{manifest_path}: {len(data) - offset} bytes left after the last weight of "
                                   f"{[s.name for s in shards]}: manifest and shards do not belong together")
    return weights


def manifest_sha256(manifest_path: Union[str, Path]) -> str:
    """One digest over the manifest and its shards, so a change to any of them makes a new cache entry."""
    from dfer_ros import assets

    manifest_path = Path(manifest_path)
    digest = hashlib.sha256(assets.sha256_of(manifest_path).encode())
    for shards, _ in read_manifest(manifest_path):
        for shard in shards:
            if not shard.is_file():
                raise TfjsWeightsError(f"{manifest_path}: weight shard {shard} is missing")
            digest.update(assets.sha256_of(shard).encode())
    return digest.hexdigest()


def weight_count(weights: dict[str, np.ndarray]) -> int:
    return int(sum(w.size for w in weights.values()))
