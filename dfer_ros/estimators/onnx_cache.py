"""A cache of converted ONNX files keyed by the source's sha256 and the converter's version.

Each entry is ``<cache>/models/<stem>_<source sha256[:16]>_v<version>.onnx`` with a ``.json`` sidecar that
records the source, its sha256, the converter version and the ONNX file's own sha256, plus any licence
notices written beside it (``<stem>...LICENSE.txt``). A missing, truncated or altered file, or one from
another converter version, is rebuilt; a read-only cache falls back to the temp dir with a warning.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Callable, Optional

from dfer_ros import assets
from dfer_ros.atomic_files import atomic_write
from dfer_ros.user_files import read_user_json

LOG = logging.getLogger(__name__)


class CacheWriteError(OSError):
    """An explicitly named cache folder cannot be written."""


def _valid(onnx_path: Path, meta_path: Path, source_sha: str, version: int, notices: dict[str, str]) -> bool:
    import onnx

    if not onnx_path.is_file() or not meta_path.is_file():
        return False
    try:
        meta = read_user_json(meta_path)
        if meta.get("source_sha256") != source_sha or meta.get("converter_version") != version:
            return False
        if meta.get("onnx_sha256") != assets.sha256_of(onnx_path):
            return False
        if any(not (onnx_path.parent / name).is_file() for name in notices):
            return False
        onnx.checker.check_model(str(onnx_path))
    except Exception as exc:  # any unreadable cache entry is simply rebuilt
        LOG.warning("cached %s is unusable (%s); rebuilding it", onnx_path, exc)
        return False
    return True


def _write(onnx_path: Path, meta_path: Path, data: bytes, meta: dict, notices: dict[str, str]) -> None:
    for name, text in notices.items():
        atomic_write(onnx_path.parent / name, text.encode())
    atomic_write(onnx_path, data)
    atomic_write(meta_path, json.dumps({**meta, "onnx_sha256": assets.sha256_of(onnx_path),
                                        "notices": sorted(notices)}, indent=1).encode())


def cached_onnx(stem: str, source_sha: str, version: int, convert: Callable[[], bytes], meta: dict,
                notices: Optional[Callable[[str], dict[str, str]]] = None, cache: Optional[Path] = None) -> Path:
    """Path of the cached conversion; ``convert()`` (serialised ONNX bytes) runs only when the entry is unusable.

    ``notices(prefix)`` gives {file name: text} of licence notices to write beside the file (names start with
    ``prefix``, the ONNX file's stem). ``cache`` given and unwritable: CacheWriteError; the default cache
    unwritable: the temp dir, with a warning.
    """
    folder = Path(cache) if cache is not None else assets.cache_dir() / "models"
    onnx_path = folder / f"{stem}_{source_sha[:16]}_v{version}.onnx"
    texts = notices(onnx_path.stem) if notices is not None else {}
    meta = {**meta, "source_sha256": source_sha, "converter_version": version}
    if _valid(onnx_path, onnx_path.with_suffix(".json"), source_sha, version, texts):
        return onnx_path
    LOG.info("converting %s to ONNX at %s", meta.get("source", stem), onnx_path)
    data = convert()
    try:
        _write(onnx_path, onnx_path.with_suffix(".json"), data, meta, texts)
    except OSError as exc:
        if cache is not None:
            raise CacheWriteError(f"cannot write the converted model to {onnx_path}: {exc}") from exc
        fallback = Path(tempfile.gettempdir()) / "dfer_ros_models" / onnx_path.name
        LOG.warning("cannot write %s (%s); using %s (set DFER_CACHE_DIR to a writable folder)",
                    onnx_path, exc, fallback)
        onnx_path = fallback
        if not _valid(onnx_path, onnx_path.with_suffix(".json"), source_sha, version, texts):
            _write(onnx_path, onnx_path.with_suffix(".json"), data, meta, texts)
    return onnx_path


def licence_notice(prefix: str, header: str, licence) -> dict[str, str]:
    """{``<prefix>.LICENSE.txt``: ``header`` followed by the text of the cached ``licence`` asset}, the notice a
    converted file is shipped with (``notices`` of ``cached_onnx``)."""
    return {f"{prefix}.LICENSE.txt": header + assets.cached_file(licence).read_text()}


def cached_tfjs_conversion(stem: str, manifest_path: Optional[Path], version: int,
                           build: Callable[[dict, Path], "object"],
                           meta: dict, notices: Callable[[str], dict[str, str]], error: type[Exception],
                           cache: Optional[Path] = None, default: tuple = (), what: str = "") -> Path:
    """Convert a TF.js weights manifest once: ``build(weights, manifest_path)`` returns the ONNX ModelProto; the entry is keyed
    by the digest of the manifest and its shards. ``manifest_path`` None: the ``default`` (weights asset,
    manifest asset), sha256-checked in the asset cache. A missing manifest and reading problems are raised as
    ``error`` naming the file (``what``: the model, for the message)."""
    from dfer_ros.estimators.tfjs_weights import TfjsWeightsError, load_weights, manifest_sha256

    if manifest_path is None:
        weights_asset, manifest_asset = default
        assets.cached_file(weights_asset)  # checks the shard's sha256
        manifest_path = assets.cached_file(manifest_asset)
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise error(f"{what} manifest not found: {manifest_path}")
    try:
        sha = manifest_sha256(manifest_path)
    except TfjsWeightsError as exc:
        raise error(str(exc)) from exc

    def convert() -> bytes:
        try:
            weights = load_weights(manifest_path)
        except TfjsWeightsError as exc:
            raise error(str(exc)) from exc
        return build(weights, manifest_path).SerializeToString()

    return cached_onnx(stem, sha, version, convert, {"source": str(manifest_path), **meta}, notices=notices,
                       cache=cache)
