"""TensorRT engine cache keyed by what makes an engine valid.

An engine is only valid for one ONNX file, one TensorRT version and one GPU model (and the build
options). The key is the sha256 of all of these; it is part of the file name and repeated in a JSON
sidecar that is compared field by field before loading, so a stale engine (new ONNX, TensorRT
upgrade, other GPU) is never loaded: it simply is not found and gets rebuilt. No tensorrt import here.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union
from dfer_ros.user_files import read_user_json


def file_sha256(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    fp16: bool
    max_batch: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


class EngineCache:
    def __init__(self, directory: Union[str, Path]):
        self.directory = Path(directory)

    def path_for(self, onnx_path: Union[str, Path], key: EngineKey) -> Path:
        return self.directory / f"{Path(onnx_path).stem}-{key.digest[:16]}.engine"

    def lookup(self, onnx_path: Union[str, Path], key: EngineKey) -> Optional[Path]:
        """The cached engine for exactly this key, or None (missing, or sidecar disagrees)."""
        engine = self.path_for(onnx_path, key)
        sidecar = engine.with_suffix(".json")
        if not engine.is_file() or not sidecar.is_file():
            return None
        try:
            stored = read_user_json(sidecar)
        except (OSError, ValueError):
            return None
        return engine if stored == asdict(key) else None

    def store(self, onnx_path: Union[str, Path], key: EngineKey, blob: bytes) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves a half engine under the key."""
        self.directory.mkdir(parents=True, exist_ok=True)
        engine = self.path_for(onnx_path, key)
        tmp = engine.with_suffix(".engine.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, engine)
        engine.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2))
        return engine
